package labkit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// GuestRunDir is where the lab guest mounts the run directory vm-run.sh
// shares with it (test/lab/vm/init). It exists in the lab VM only.
const GuestRunDir = "/run/srp-mpathd-lab/job"

// EnvOut names the directory results land in, on the host and in the guest.
const EnvOut = "LAB_OUT"

// InVM reports whether the caller runs inside a lab VM.
func InVM() bool {
	_, err := os.Stat(GuestRunDir + "/job.sh")
	return err == nil
}

// RequireVM skips t unless it runs inside a lab VM: scenarios load modules,
// create block devices and kill processes, which they must never do to the
// machine that runs go test.
func RequireVM(t testing.TB) {
	t.Helper()
	if !InVM() {
		t.Skipf("not inside a lab VM (%s/job.sh is missing); run the lab with `make lab`", GuestRunDir)
	}
}

// RequireModule loads kernel module name with modprobe. Inside the lab VM a
// failure fails t: the lab kernel is chosen to have every module the
// scenarios need, so a missing one is a broken lab, not a reason to skip.
// Elsewhere a module that is neither loaded nor loadable skips t with
// modprobe's own reason.
func RequireModule(t testing.TB, name string) {
	t.Helper()
	err := LoadModule(name)
	if err == nil {
		return
	}
	if InVM() {
		t.Fatalf("kernel module %s: %v", name, err)
	}
	t.Skipf("kernel module %s is not available: %v", name, err)
}

// LoadModule modprobes name (with params, e.g. "nr_devices=1") unless it is
// already loaded. Module parameters are only applied by a fresh load.
func LoadModule(name string, params ...string) error {
	if _, err := os.Stat("/sys/module/" + strings.ReplaceAll(name, "-", "_")); err == nil && len(params) == 0 {
		return nil
	}
	args := append([]string{name}, params...)
	out, err := exec.Command("modprobe", args...).CombinedOutput()
	if err != nil {
		return &OpError{Op: "modprobe", Path: name, Err: fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))}
	}
	return nil
}

// Run runs a command and returns its combined output; a failure fails t with
// that output.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// clockTicksPerSecond is USER_HZ, the unit of /proc/<pid>/stat times. It is
// 100 on every Linux architecture Go supports.
const clockTicksPerSecond = 100

// BootTime returns how long after the kernel started the calling process was
// started (field 22 of /proc/self/stat), at the kernel's 10 ms tick
// resolution. In the lab that is the boot time as the scenario sees it:
// kernel, initramfs, 9p root and the job script.
func BootTime() (time.Duration, error) {
	const path = "/proc/self/stat"
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, &OpError{Op: "read", Path: path, Err: err}
	}
	// comm (field 2) may contain spaces and parentheses: fields count from
	// the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, &OpError{Op: "parse", Path: path, Err: errors.New("no ')' after comm")}
	}
	fields := strings.Fields(string(b[i+1:]))
	const startTimeField = 22 - 3 // fields[0] is field 3 (state)
	if len(fields) <= startTimeField {
		return 0, &OpError{Op: "parse", Path: path, Err: fmt.Errorf("%d fields after comm", len(fields))}
	}
	ticks, err := strconv.ParseUint(fields[startTimeField], 10, 64)
	if err != nil {
		return 0, &OpError{Op: "parse", Path: path, Err: err}
	}
	return time.Duration(ticks) * time.Second / clockTicksPerSecond, nil
}
