package uring

import "errors"

// ErrNoProgress is returned when io_uring_enter consumed no SQE and reported
// no error, so retrying would spin.
var ErrNoProgress = errors.New("uring: kernel consumed no submission")

// OpError records the failed ring operation and its errno.
type OpError struct {
	Op  string
	Err error
}

func (e *OpError) Error() string { return "uring: " + e.Op + ": " + e.Err.Error() }

func (e *OpError) Unwrap() error { return e.Err }
