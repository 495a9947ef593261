package ublk_test

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
)

// TestKernelCreateStop runs on a kernel with ublk_drv (the lab VM, as
// root): create a memory-backed device, write and read it with O_DIRECT
// from this goroutine (never from a queue thread), stop and delete it.
func TestKernelCreateStop(t *testing.T) {
	if err := (ublk.Linux{}).Probe(); err != nil {
		t.Skipf("no usable ublk driver on this kernel (the lab VM has one): %v", err)
	}
	ctl, err := ublk.NewControl(ublk.Linux{}, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	feat, ok, err := ctl.Features(testCtx(t))
	t.Logf("GET_FEATURES: %v ok=%v err=%v", feat, ok, err)
	mem := ublk.NewMemory(testSize, 4096)
	spec := ublk.DeviceSpec{ID: 43, Queues: 2, Depth: 16, MaxIO: 128 << 10, Size: testSize, LogicalBlockSize: 4096,
		Recovery: true, Discard: true, Handler: ublk.NewBackendHandler(mem, 2), Logger: logger(t)}
	d, err := ublk.Open(testCtx(t), ctl, spec)
	if err != nil {
		t.Fatal(err)
	}
	path := d.BlockPath()
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = d.Stop(testCtx(t))
		t.Fatal(err)
	}
	buf, _ := unix.Mmap(-1, 0, 65536, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	copy(buf, pattern(len(buf), 9))
	_, werr := unix.Pwrite(fd, buf, 1<<20)
	clear(buf)
	_, rerr := unix.Pread(fd, buf, 1<<20)
	_ = unix.Close(fd) // before STOP: del_gendisk waits for openers
	_ = unix.Munmap(buf[:0:len(buf)])
	if werr != nil || rerr != nil {
		t.Errorf("I/O: write %v read %v", werr, rerr)
	}
	got := make([]byte, 65536)
	_ = mem.ReadAt(t.Context(), got, 1<<20)
	if !bytes.Equal(got, pattern(65536, 9)) {
		t.Error("backend does not hold the written data")
	}
	if err := d.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after stop: %v", path, err)
	}
}
