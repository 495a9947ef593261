package labkit

import (
	"errors"
	"fmt"
)

// ErrNoOutDir is returned when $LAB_OUT is not set: a scenario has nowhere to
// write its fragment.
var ErrNoOutDir = errors.New("labkit: LAB_OUT is not set")

// ErrBadFragment marks a fragment file that does not decode or names no
// scenario.
var ErrBadFragment = errors.New("labkit: bad scenario fragment")

// ErrBadTimeline marks a timeline file that does not decode.
var ErrBadTimeline = errors.New("labkit: bad timeline")

// OpError is a failed labkit operation on a path or a command.
type OpError struct {
	Op   string // "write fragment", "read fragment", "modprobe", "fio", ...
	Path string // file or command the operation worked on
	Err  error
}

func (e *OpError) Error() string { return fmt.Sprintf("labkit: %s %s: %v", e.Op, e.Path, e.Err) }

// Unwrap returns the underlying error.
func (e *OpError) Unwrap() error { return e.Err }
