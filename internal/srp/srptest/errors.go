package srptest

import "errors"

// Errors of the target's API (construction and configuration). What goes
// wrong on the wire is answered on the wire (LOGIN_REJ, CHECK CONDITION,
// DREQ), not returned.
var (
	// ErrClosed is returned by a Target after Close.
	ErrClosed = errors.New("srptest: target closed")
	// ErrBadConfig is returned for an invalid LU configuration (block
	// size, capacity, designator length, duplicate LUN).
	ErrBadConfig = errors.New("srptest: bad configuration")
)
