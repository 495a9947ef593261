package paths

import (
	"errors"
	"strconv"
)

// Sentinel errors. An I/O completes with nil or exactly one of the I/O
// sentinels, bare (the data path does not allocate); the ublk edge
// translates them to an errno in one function (Errno).
var (
	// ErrNoPath: no path was usable and no_path_retry (or a failfast flag)
	// said not to wait, or the wait ran out.
	ErrNoPath = errors.New("paths: no usable path")
	// ErrIO: the I/O failed on every try with path-type errors (retries
	// exhausted), or the target answered with an unclassified error.
	ErrIO = errors.New("paths: I/O error")
	// ErrTarget: the target refused the command (hardware error, illegal
	// request, data protect); another path would not help.
	ErrTarget = errors.New("paths: target error")
	// ErrMedium: unrecoverable medium error.
	ErrMedium = errors.New("paths: medium error")
	// ErrProtection: protection information check failed.
	ErrProtection = errors.New("paths: protection information error")
	// ErrNoSpace: thin provisioning pool exhausted.
	ErrNoSpace = errors.New("paths: no space")
	// ErrReservation: reservation conflict.
	ErrReservation = errors.New("paths: reservation conflict")
	// ErrInvalid: the request is malformed (unaligned, out of range, unknown
	// op, longer than the tag buffer).
	ErrInvalid = errors.New("paths: invalid request")

	// ErrUnknownPath: an admin call named a path the device does not have.
	ErrUnknownPath = errors.New("paths: unknown path")
	// ErrPathExists: AddPath with an id already in use.
	ErrPathExists = errors.New("paths: path exists")
	// ErrTooManyPaths: more than MaxPaths paths.
	ErrTooManyPaths = errors.New("paths: too many paths")
	// ErrClosed: the device was closed.
	ErrClosed = errors.New("paths: device closed")
	// ErrBadConfig: a Config, QueueConfig or PathSpec is invalid.
	ErrBadConfig = errors.New("paths: bad configuration")
	// ErrBadPolicy is wrapped by every *PolicyError.
	ErrBadPolicy = errors.New("paths: bad policy")
	// ErrConnect: a Connector failed (wrapped with the cause).
	ErrConnect = errors.New("paths: connect failed")
)

// PolicyError names the policy field that is wrong, what it was and what is
// accepted. It wraps ErrBadPolicy (and, for the path timers, the fsm's
// *ConfigError).
type PolicyError struct {
	Field string
	Value string
	Want  string
	Err   error
}

func (e *PolicyError) Error() string {
	return "paths: bad policy: " + e.Field + " " + strconv.Quote(e.Value) + ": want " + e.Want
}

// Unwrap returns ErrBadPolicy and the underlying cause.
func (e *PolicyError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrBadPolicy, e.Err}
	}
	return []error{ErrBadPolicy}
}

// OpError is a control-plane operation on one path that failed.
type OpError struct {
	Op   string // "add path", "connect", "register buffers", ...
	Path string
	Err  error
}

func (e *OpError) Error() string {
	return "paths: " + e.Op + " " + strconv.Quote(e.Path) + ": " + e.Err.Error()
}

func (e *OpError) Unwrap() error { return e.Err }
