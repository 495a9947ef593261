package ublk

import (
	"context"
	"errors"
	"strconv"

	"golang.org/x/sys/unix"
)

// Sentinel errors. Errors from the driver carry the kernel's errno
// (unix.Errno) inside an *OpError, so errors.Is(err, unix.EBUSY) works.
var (
	ErrInvalidSpec   = errors.New("ublk: invalid device spec")
	ErrDeviceBusy    = errors.New("ublk: device is served by a live process")
	ErrNoRecovery    = errors.New("ublk: device exists without user recovery")
	ErrClosed        = errors.New("ublk: closed")
	ErrQueueSetup    = errors.New("ublk: queue setup failed")
	ErrUnsupportedOp = errors.New("ublk: operation not supported by the backend")
	ErrShortIO       = errors.New("ublk: backend transferred fewer bytes than asked")
	// ErrRequestsLeft: a detach outlived its context with requests the
	// handler still owned (I/O waiting for a path); the queues left them
	// to the kernel, which with USER_RECOVERY_REISSUE gives them to the
	// next server, as after a crash.
	ErrRequestsLeft = errors.New("ublk: requests left to the kernel for the next server")
	// ErrCommandAbandoned: a control command's context ended while the
	// kernel still had it. The Control cannot issue more commands; close it
	// (which interrupts the command) and open a new one.
	ErrCommandAbandoned = errors.New("ublk: control command abandoned in flight")
)

// OpError records a failed control or queue operation.
type OpError struct {
	Op    string // e.g. "ADD_DEV", "open /dev/ublkc3", "queue 1"
	DevID uint32
	Err   error
}

func (e *OpError) Error() string {
	return "ublk: dev " + strconv.FormatUint(uint64(e.DevID), 10) + ": " + e.Op + ": " + e.Err.Error()
}

func (e *OpError) Unwrap() error { return e.Err }

// ErrnoFor translates an error from a Backend (or a generic handler error)
// into the negative errno the kernel's ublk_complete_rq maps to a block
// status: the one place this package does so. A Handler with a richer error
// domain translates in one function of its own and completes with the errno
// (internal/paths.Errno maps SCSI outcomes as scsi_result_to_blk_status
// would).
func ErrnoFor(err error) int32 {
	var errno unix.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &errno) && errno != 0:
		return -int32(errno)
	case errors.Is(err, context.DeadlineExceeded):
		return -int32(unix.ETIMEDOUT)
	case errors.Is(err, context.Canceled), errors.Is(err, ErrClosed):
		return -int32(unix.ENOLINK)
	case errors.Is(err, ErrUnsupportedOp):
		return -int32(unix.EOPNOTSUPP)
	}
	return -int32(unix.EIO)
}

// resErr turns a negative CQE result into an error (nil for res >= 0).
func resErr(res int32) error {
	if res >= 0 {
		return nil
	}
	return unix.Errno(-res)
}
