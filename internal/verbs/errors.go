package verbs

import (
	"errors"
	"fmt"
)

// Sentinel errors of the seam. Providers wrap them with %w.
var (
	ErrNotSupported  = errors.New("verbs: not supported")
	ErrIndexRange    = errors.New("verbs: index out of range")
	ErrNoDevice      = errors.New("verbs: no such device")
	ErrNotFound      = errors.New("verbs: not found")
	ErrQueueFull     = errors.New("verbs: work queue full")
	ErrQPError       = errors.New("verbs: queue pair in error state")
	ErrClosed        = errors.New("verbs: closed")
	ErrTimeout       = errors.New("verbs: timed out")
	ErrUnreachable   = errors.New("verbs: destination unreachable")
	ErrRouteResolve  = errors.New("verbs: route resolution failed")
	ErrConnRefused   = errors.New("verbs: connection refused (no listener)")
	ErrInvalidAccess = errors.New("verbs: invalid access")
	// ErrInvalidWR is a work request the provider refuses at post time
	// (too many SGEs, unknown opcode), like ibv_post_send's EINVAL.
	ErrInvalidWR = errors.New("verbs: invalid work request")
	// ErrMalformed is a sysfs attribute that does not parse.
	ErrMalformed = errors.New("verbs: malformed sysfs attribute")
)

// RejectError is a CM REJ received in answer to a connection request.
type RejectError struct {
	// Reason is the CM reject reason (28 = consumer defined, the one SRP
	// targets use with an SRP_LOGIN_REJ in Private).
	Reason  int
	Private []byte
}

// CMRejectConsumer is the CM reject reason of a consumer-defined reject.
const CMRejectConsumer = 28

func (e *RejectError) Error() string {
	return fmt.Sprintf("verbs: connection rejected (CM reason %d, %d bytes of private data)", e.Reason, len(e.Private))
}

// OpError records the operation, device and cause of a failure.
type OpError struct {
	Op     string // e.g. "dial", "resolve route", "register memory"
	Device string
	Err    error
}

func (e *OpError) Error() string {
	if e.Device != "" {
		return "verbs: " + e.Op + " on " + e.Device + ": " + e.Err.Error()
	}
	return "verbs: " + e.Op + ": " + e.Err.Error()
}

func (e *OpError) Unwrap() error { return e.Err }
