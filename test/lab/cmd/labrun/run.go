package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/srp-mpathd/srp-mpathd/test/lab/labkit"
)

// runner holds what every step of a lab run needs.
type runner struct {
	root   string // module root
	out    string // $LAB_OUT
	cache  string // $LAB_CACHE
	kmeta  string // Debian kernel meta package
	goCmd  string
	stderr io.Writer // progress for humans
}

const (
	vmDir = "test/lab/vm"
	// testTimeoutMargin is how much earlier than the VM's own limit the
	// test binary's -test.timeout fires, so a hung scenario ends in Go's
	// goroutine dump (which names the stuck call) rather than in a VM kill.
	testTimeoutMargin = 45 * time.Second
	// vmKillGrace bounds the wait for vm-run.sh and qemu after a cancel.
	vmKillGrace = 15 * time.Second
)

func (r *runner) progressf(format string, args ...any) {
	fmt.Fprintf(r.stderr, "lab: "+format+"\n", args...)
}

// fetchKernel runs fetch-kernel.sh and returns the kernel release.
func (r *runner) fetchKernel(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(r.root, vmDir, "fetch-kernel.sh"), r.kmeta)
	cmd.Env = append(os.Environ(), "LAB_CACHE="+r.cache)
	cmd.Stderr = r.stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("fetch-kernel.sh %s: %w", r.kmeta, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "KVER="); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("fetch-kernel.sh printed no KVER:\n%s", out)
}

// build compiles each package's lab test binary into $LAB_OUT/bin. That
// directory is shared with the guest at the same path, so the binary is
// there whatever the host root hides (a guest tmpfs covers /tmp); the guest
// copies it to its own tmpfs before running it.
func (r *runner) build(ctx context.Context, pkg string) (string, error) {
	bin := filepath.Join(r.out, "bin", strings.ReplaceAll(strings.Trim(pkg, "./"), "/", "-")+".test")
	cmd := exec.CommandContext(ctx, r.goCmd, "test", "-c", "-tags", "lab", "-o", bin, pkg)
	cmd.Dir = r.root
	cmd.Stdout, cmd.Stderr = r.stderr, r.stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building %s: %w", pkg, err)
	}
	return bin, nil
}

// checkListed refuses a lab binary with a test that no suite runs: it would
// never run anywhere. Listing tests is harmless on the host. It returns the
// tests the suite table names for pkg that the binary lacks: each fails its
// own scenarios (OutcomeAbsent), not the run, so a suite can be listed
// before its test is written.
func (r *runner) checkListed(ctx context.Context, bin, pkg string) (map[string]bool, error) {
	out, err := exec.CommandContext(ctx, bin, "-test.list", ".").Output()
	if err != nil {
		return nil, fmt.Errorf("%s -test.list: %w", bin, err)
	}
	return listedCheck(string(out), pkg)
}

// listedCheck compares a binary's -test.list output with the suite table:
// an error for tests in no suite, the set of table tests it lacks.
func listedCheck(list, pkg string) (map[string]bool, error) {
	listed := map[string]bool{}
	for _, s := range suites {
		if s.Package != pkg {
			continue
		}
		for _, e := range s.Scenarios {
			listed[e.Test] = true
		}
	}
	var unlisted []string
	absent := maps.Clone(listed)
	for _, name := range strings.Fields(list) {
		if !strings.HasPrefix(name, "Test") {
			continue
		}
		delete(absent, name)
		if !listed[name] {
			unlisted = append(unlisted, name)
		}
	}
	if len(unlisted) > 0 {
		return nil, fmt.Errorf("%s has tests in no suite of test/lab/cmd/labrun/suites.go: %s", pkg, strings.Join(unlisted, ", "))
	}
	return absent, nil
}

// absentRun is the outcome of a suite none of whose tests exist: no VM is
// booted for it.
func absentRun(s Suite) *suiteRun {
	ts := &TestStream{Tests: map[string]*TestRecord{}}
	markAbsent(ts, s, func(string) bool { return true })
	return &suiteRun{tests: ts, vm: VMOutcome{Timeout: s.Timeout}}
}

// markAbsent records the suite's tests for which absent is true as
// OutcomeAbsent.
func markAbsent(ts *TestStream, s Suite, absent func(test string) bool) {
	for _, e := range s.Scenarios {
		if absent(e.Test) {
			ts.Tests[e.Test] = &TestRecord{Outcome: OutcomeAbsent}
		}
	}
}

// allAbsent reports whether none of s's tests exist.
func allAbsent(s Suite, absent map[string]bool) bool {
	for _, e := range s.Scenarios {
		if !absent[e.Test] {
			return false
		}
	}
	return true
}

// testRunPattern selects exactly the suite's tests.
func testRunPattern(s Suite) string {
	var names []string
	for _, e := range s.Scenarios {
		if q := regexp.QuoteMeta(e.Test); !slices.Contains(names, q) {
			names = append(names, q)
		}
	}
	return "^(" + strings.Join(names, "|") + ")$"
}

// suiteRun is what one suite's VM left behind.
type suiteRun struct {
	vm     VMOutcome
	tests  *TestStream
	accel  string
	wallMS int64
}

var accelRE = regexp.MustCompile(`vm-run: kernel \S+, accel (\w+)`)

// runSuite boots one VM for suite s and runs its tests in it.
func (r *runner) runSuite(ctx context.Context, s Suite, bin string) (*suiteRun, error) {
	dir := filepath.Join(r.out, s.Name)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	raw, err := os.Create(filepath.Join(dir, "test.out"))
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	var vmLog bytes.Buffer

	testTimeout := max(s.Timeout-testTimeoutMargin, s.Timeout/2)
	args := []string{
		"-v", "--mem", s.Mem, "--cpus", strconv.Itoa(s.CPUs),
		"--timeout", strconv.Itoa(int(s.Timeout / time.Second)),
		"--rwdir", r.out, "--console", filepath.Join(dir, "console.log"),
		"-e", "LAB_DMESG=" + filepath.Join(dir, "dmesg.txt"), "--",
		// Run a copy on the guest's tmpfs: executing (mmap) straight off the
		// 9p share is unreliable (a re-exec of the binary read garbage, and
		// the scenarios re-exec it as their ublk server). stderr goes into
		// stdout, as go test -json does, so a panic's trace lands in the
		// test stream next to the test that caused it. The whole kernel log
		// is kept afterwards (the console only shows warnings and worse).
		"/bin/sh", "-c", `cp "$0" /tmp/lab.test || exit 125; /tmp/lab.test "$@" 2>&1; rc=$?; dmesg > "$LAB_DMESG" 2>&1; exit $rc`, bin,
		"-test.v=test2json", "-test.count=1", "-test.run", testRunPattern(s),
		"-test.timeout", testTimeout.String(),
	}
	cmd := exec.CommandContext(ctx, filepath.Join(r.root, vmDir, "vm-run.sh"), args...)
	cmd.Dir = filepath.Join(r.root, s.Package)
	cmd.Env = append(os.Environ(), labkit.EnvOut+"="+r.out, "LAB_CACHE="+r.cache, "LAB_KMETA="+r.kmeta)
	cmd.Stdout = io.MultiWriter(raw, &progressWriter{w: r.stderr, prefix: "lab[" + s.Name + "]: "})
	cmd.Stderr = io.MultiWriter(&vmLog, r.stderr)
	// vm-run.sh, timeout(1) and qemu share a process group: a cancel must
	// reach qemu, not only the shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = vmKillGrace

	start := time.Now()
	runErr := cmd.Run()
	sr := &suiteRun{wallMS: time.Since(start).Milliseconds(), vm: VMOutcome{Timeout: s.Timeout}}
	var ee *exec.ExitError
	switch {
	case runErr == nil:
	case errors.As(runErr, &ee) && ee.ExitCode() >= 0:
		sr.vm.ExitCode = ee.ExitCode()
	default:
		return nil, fmt.Errorf("vm-run.sh for suite %s: %w", s.Name, runErr)
	}
	if err := os.WriteFile(filepath.Join(dir, "vm.log"), vmLog.Bytes(), 0o644); err != nil {
		return nil, err
	}
	if m := accelRE.FindSubmatch(vmLog.Bytes()); m != nil {
		sr.accel = string(m[1])
	}
	if sr.vm.ExitCode != 0 {
		sr.vm.Detail = "--- vm-run ---\n" + vmLog.String()
	}
	if console, err := os.ReadFile(filepath.Join(dir, "console.log")); err == nil {
		sr.vm.KernelProblems = kernelProblems(string(console))
	}
	if sr.tests, err = r.decodeTests(ctx, s, raw.Name(), filepath.Join(dir, "test.json")); err != nil {
		return nil, err
	}
	return sr, nil
}

// decodeTests turns the binary's -test.v=test2json output into go test
// -json events with the toolchain's own converter, keeps them as jsonPath
// and parses them.
func (r *runner) decodeTests(ctx context.Context, s Suite, rawPath, jsonPath string) (*TestStream, error) {
	in, err := os.Open(rawPath)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	var js bytes.Buffer
	cmd := exec.CommandContext(ctx, r.goCmd, "tool", "test2json", "-t", "-p", s.Name)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, &js, r.stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go tool test2json: %w", err)
	}
	if err := os.WriteFile(jsonPath, js.Bytes(), 0o644); err != nil {
		return nil, err
	}
	return ParseTestEvents(&js)
}

// progressWriter echoes the test start and end lines of the test stream.
type progressWriter struct {
	w       io.Writer
	prefix  string
	partial []byte
}

// test2jsonMarker frames the lines of -test.v=test2json output.
const test2jsonMarker = "\x16"

func (p *progressWriter) Write(b []byte) (int, error) {
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimPrefix(string(p.partial[:i]), test2jsonMarker)
		p.partial = p.partial[i+1:]
		t := strings.TrimLeft(line, " ")
		if strings.HasPrefix(t, "=== RUN") || strings.HasPrefix(t, "--- ") || strings.HasPrefix(t, "panic:") {
			fmt.Fprintf(p.w, "%s%s\n", p.prefix, strings.ReplaceAll(line, test2jsonMarker, ""))
		}
	}
	return len(b), nil
}

var _ io.Writer = (*progressWriter)(nil)
