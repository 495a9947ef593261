package sim

import "errors"

// Errors of the simulator's own API (fabric construction, listeners). Errors
// of the seam's methods are the verbs sentinels, wrapped in *verbs.OpError.
var (
	// ErrExists is returned when a device name or a port's link is taken.
	ErrExists = errors.New("sim: already exists")
	// ErrAddrInUse is returned by Listen for an address already listened on.
	ErrAddrInUse = errors.New("sim: address already in use")
	// ErrAnswered is returned by Accept or Reject of a request that was
	// already answered or that the initiator abandoned (timeout, cancel).
	ErrAnswered = errors.New("sim: connection request already answered or abandoned")
	// ErrBadConfig is returned for invalid device, port or link settings.
	ErrBadConfig = errors.New("sim: invalid configuration")
)
