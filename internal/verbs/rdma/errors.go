package rdma

import (
	"errors"
	"fmt"
)

// Sentinel errors of the provider. Failures are returned as *verbs.OpError
// (operation and device) wrapping these, the seam's sentinels
// (verbs.ErrUnreachable, verbs.ErrTimeout, ...) or a syscall.Errno.
var (
	// ErrNoCgo is what every entry point returns in a binary built without
	// cgo (or for another OS): the provider is C code over rdma-core.
	ErrNoCgo = errors.New("rdma: built without cgo (or not on Linux): the rdma-core provider is unavailable")
	// ErrWrongDevice means the address resolution picked another RDMA device
	// than the one Dial was called on: the source address belongs to it.
	ErrWrongDevice = errors.New("rdma: route resolved through another RDMA device")
	// ErrNoRDMACM means librdmacm could not be initialised (rdma_ucm not
	// loaded, or no RDMA device at all).
	ErrNoRDMACM = errors.New("rdma: librdmacm has no devices (is rdma_ucm loaded?)")
	// ErrUnexpectedEvent is a CM event that does not belong to the step
	// being waited for.
	ErrUnexpectedEvent = errors.New("rdma: unexpected CM event")
	// ErrBadParams is a DialParams/AcceptParams value the provider refuses
	// (too much private data, a zero queue depth, an invalid address).
	ErrBadParams = errors.New("rdma: invalid parameters")
)

// CMEventError is a connection-manager event that ended a connection setup
// step: its name (rdma_event_str), the status librdmacm reported (a negative
// errno, or an IB CM reason for REJECTED), and the seam's sentinel it means.
type CMEventError struct {
	Event  string
	Status int
	Err    error
}

func (e *CMEventError) Error() string {
	return fmt.Sprintf("rdma: %s (status %d): %v", e.Event, e.Status, e.Err)
}

// Unwrap returns the seam's sentinel (or *verbs.RejectError) the event maps to.
func (e *CMEventError) Unwrap() error { return e.Err }
