package ublk

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uring"
)

// TestLinuxControlTransport sends a control command through the real
// SQE128 transport to a file without uring_cmd: -EOPNOTSUPP shows the SQE,
// cmd area and payload plumbing work on this kernel without ublk.
func TestLinuxControlTransport(t *testing.T) {
	r, err := uring.New(ctrlRingEntries, uring.SetupSQE128)
	if err != nil {
		t.Skipf("io_uring unavailable: %v", err)
	}
	fd, err := unix.Open(t.TempDir(), unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c := &linuxControl{fd: fd, ring: r}
	defer func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}()
	mem, free, err := allocOffHeap(payloadSize)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = free() }()
	for range 3 {
		res, err := c.Cmd(t.Context(), uapi.CmdGetFeatures.Ioctl(), uapi.CtrlCmd{QueueID: uapi.QueueIDNone}, mem[:uapi.FeaturesSize])
		if err != nil || res != -int32(unix.EOPNOTSUPP) {
			t.Fatalf("res %d err %v", res, err)
		}
	}
}

func TestLinuxProbe(t *testing.T) {
	var l Linux
	err := l.Probe()
	if err == nil {
		t.Skip("ublk is available: nothing to check about its absence")
	}
	if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.ENODEV) {
		t.Fatalf("unexpected probe error: %v", err)
	}
	if !l.PIDAlive(int32(os.Getpid())) || l.PIDAlive(-1) {
		t.Error("PIDAlive")
	}
}
