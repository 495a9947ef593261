// Package leakcheck fails a test binary that leaves goroutines or file
// descriptors behind. Test packages call Main from TestMain.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// settleRounds bounds how often Main yields while exiting goroutines finish.
const settleRounds = 2000

// Main runs the tests and then checks that the number of open file
// descriptors and goroutines is back to where it was before.
func Main(m *testing.M) {
	// The runtime opens its netpoller (epoll + eventfd) on first use of an
	// *os.File; open it now so it is part of the baseline.
	if r, w, err := os.Pipe(); err == nil {
		_ = r.Close()
		_ = w.Close()
	}
	fds := countFDs()
	gs := countGoroutines()
	code := m.Run()
	if code == 0 {
		if err := check(fds, gs); err != nil {
			fmt.Fprintln(os.Stderr, "leakcheck:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func check(fds, gs int) error {
	// Goroutines that were told to stop may still be on their way out:
	// yield (not sleep) until they are gone or the bound is reached.
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		nf, ng := countFDs(), countGoroutines()
		if nf <= fds && ng <= gs {
			return nil
		}
		if i > settleRounds && time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			return fmt.Errorf("fds %d→%d, goroutines %d→%d; open fds: %s\n%s", fds, nf, gs, ng, listFDs(), buf[:n])
		}
		runtime.Gosched()
		runtime.GC()
	}
}

// runtimeOwned marks goroutines that the runtime or the testing package
// start on demand and keep (signal delivery while fuzzing).
var runtimeOwned = []string{"os/signal.loop", "os/signal.signal_recv"}

// countGoroutines counts goroutines other than runtimeOwned ones.
func countGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		owned := false
		for _, m := range runtimeOwned {
			if strings.Contains(g, m) {
				owned = true
			}
		}
		if !owned && strings.HasPrefix(g, "goroutine ") {
			n++
		}
	}
	return n
}

func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents) - 1 // the directory's own fd
}

func listFDs() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var sb strings.Builder
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		sb.WriteString(e.Name() + "→" + l + " ")
	}
	return sb.String()
}
