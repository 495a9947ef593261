package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// crashChildEnv makes the test binary act as the child of TestCrashDuringBind.
const crashChildEnv = "SRP_MPATHD_STORE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(crashChildEnv); spec != "" {
		os.Exit(crashChild(spec))
	}
	os.Exit(m.Run())
}

// crashChild binds WWIDs "<prefix>.<i>" one by one, printing each completed
// binding, until it is killed (or reaches a bound that the parent never lets
// it reach). Between binds it rewrites other state so that kills land in
// every kind of transaction.
func crashChild(spec string) int {
	path, prefix, ok := strings.Cut(spec, "|")
	if !ok {
		fmt.Fprintln(os.Stderr, "bad child spec", spec)
		return 2
	}
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	const bound = 100000 // never reached: the parent kills far earlier
	out := bufio.NewWriter(os.Stdout)
	for i := range bound {
		wwid := fmt.Sprintf("%s.%d", prefix, i)
		dev, _, err := s.Bind(wwid, lu(uint64(i+1)))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintf(out, "%s %d\n", wwid, dev)
		if err := out.Flush(); err != nil {
			return 1
		}
		switch i % 4 {
		case 1:
			err = s.Touch(wwid)
		case 2:
			err = s.SetPathAdminState(fmt.Sprintf("path-%d", i%7), i%8 == 2, "crash test")
		case 3:
			err = s.SetPolicy(wwid, Policy{Selector: "round-robin"})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

// TestCrashDuringBind kills a child process with SIGKILL while it binds
// WWIDs, several times over the same file, and checks after each kill that
// the store opens, passes Check, and holds every binding the child reported
// complete, with its id, and nothing else half-done. It needs no root.
func TestCrashDuringBind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	reported := map[string]int{}
	for round, killAfter := range []int{1, 7, 23, 41, 60} {
		prefix := fmt.Sprintf("naa.r%d", round)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path+"|"+prefix)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		n := 0
		for n < killAfter && sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 {
				t.Fatalf("child said %q", sc.Text())
			}
			id, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			reported[f[0]] = id
			n++
		}
		// The child is now between, or in the middle of, transactions.
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Lines written before the kill are completed binds too.
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 2 {
				id, _ := strconv.Atoi(f[1])
				reported[f[0]] = id
			}
		}
		werr := cmd.Wait()
		if n < killAfter {
			t.Fatalf("round %d: child stopped after %d binds: %v", round, n, werr)
		}
		ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child was not killed by SIGKILL: %v", round, werr)
		}

		s, err := Open(path, Options{}) // runs Check
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		list, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		ids := map[int]string{}
		for _, id := range list {
			got[id.WWID] = id.DevID
			if other, dup := ids[id.DevID]; dup {
				t.Fatalf("round %d: id %d bound to %s and %s", round, id.DevID, other, id.WWID)
			}
			ids[id.DevID] = id.WWID
		}
		for w, id := range reported {
			if gid, ok := got[w]; !ok || gid != id {
				t.Fatalf("round %d: %s reported with id %d, store has %d (present: %v)", round, w, id, gid, ok)
			}
		}
		// At most the one in-flight bind may have landed unreported.
		if extra := len(got) - len(reported); extra < 0 || extra > 1 {
			t.Fatalf("round %d: store has %d identities, %d reported", round, len(got), len(reported))
		}
		for w, id := range got {
			reported[w] = id // an unreported but committed bind is now fixed too
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
