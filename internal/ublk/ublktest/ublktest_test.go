package ublktest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/leakcheck"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
)

func TestMain(m *testing.M) {
	MaybeServe()
	leakcheck.Main(m)
}

func TestRunRejectsBadArgs(t *testing.T) {
	for _, args := range [][]string{{"-backend", "tape"}, {"-log", "loud"}, {"extra"}, {"-nosuchflag"}} {
		if err := Run(t.Context(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// requireUblk skips unless the kernel's ublk driver is usable (the lab VM).
func requireUblk(t *testing.T) {
	t.Helper()
	if err := (ublk.Linux{}).Probe(); err != nil {
		t.Skipf("no usable ublk driver on this kernel (the lab VM has one): %v", err)
	}
}

// directIO reads or writes one aligned block of dev with O_DIRECT, so the
// page cache does not hide the server.
func directIO(t *testing.T, path string, off int64, write bool, data []byte) {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	buf, err := unix.Mmap(-1, 0, len(data), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	if write {
		copy(buf, data)
		if n, err := unix.Pwrite(fd, buf, off); err != nil || n != len(buf) {
			t.Fatalf("pwrite: %d %v", n, err)
		}
		return
	}
	if n, err := unix.Pread(fd, buf, off); err != nil || n != len(buf) {
		t.Fatalf("pread: %d %v", n, err)
	}
	copy(data, buf)
}

// TestKernelServeKillRecover runs on a kernel with ublk (the lab): serve a
// file-backed device, write, SIGKILL the server, recover the same id in a
// new process, read the data back through the same /dev/ublkbN, stop.
func TestKernelServeKillRecover(t *testing.T) {
	requireUblk(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	file := filepath.Join(t.TempDir(), "backing")
	args := []string{"-id", "42", "-queues", "2", "-depth", "32", "-size", "67108864", "-backend", "file:" + file, "-recover"}
	a, err := Start(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	if a.Path != BlockPath(42) || a.Recovered {
		t.Fatalf("first server: %+v", a)
	}
	data := bytes.Repeat([]byte("ublk-recovery!!!"), 4096/16)
	directIO(t, a.Path, 1<<20, true, data)
	var st1 unix.Stat_t
	if err := unix.Stat(a.Path, &st1); err != nil {
		t.Fatal(err)
	}
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	b, err := Start(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Recovered {
		t.Fatalf("second server did not recover: %s", b.Stderr())
	}
	var st2 unix.Stat_t
	if err := unix.Stat(b.Path, &st2); err != nil || st2.Rdev != st1.Rdev {
		t.Fatalf("block device changed across recovery: %v %#x → %#x", err, st1.Rdev, st2.Rdev)
	}
	got := make([]byte, len(data))
	directIO(t, b.Path, 1<<20, false, got)
	if !bytes.Equal(got, data) {
		t.Fatal("data differs after recovery")
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after stop: %v", b.Path, err)
	}
}
