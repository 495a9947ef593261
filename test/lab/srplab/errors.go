package srplab

import (
	"errors"
	"fmt"
)

// ErrTimeout is returned when the kernel did not reach a wanted state (a port
// ACTIVE, a SCSI disk present, a multipath map with every path up) in time.
var ErrTimeout = errors.New("srplab: timed out")

// ErrBadPath is returned for a path or target index the lab does not have.
var ErrBadPath = errors.New("srplab: no such path")

// OpError is a failed lab operation: a command, or a sysfs/configfs write.
type OpError struct {
	Op   string // "run", "write", "read", "mkdir", "symlink", "wait", ...
	Path string // command line or file
	Err  error
}

func (e *OpError) Error() string { return fmt.Sprintf("srplab: %s %s: %v", e.Op, e.Path, e.Err) }

// Unwrap returns the underlying error.
func (e *OpError) Unwrap() error { return e.Err }
