package daemon

import (
	"errors"
	"strconv"
)

// Sentinel errors. Every error the daemon and its control API return wraps
// one of them, so the CLI maps them to exit codes with errors.Is.
var (
	// ErrBadOptions: an Options field is invalid (the message names it).
	ErrBadOptions = errors.New("daemon: bad options")
	// ErrUnknownDevice: a request named a device the daemon does not serve.
	ErrUnknownDevice = errors.New("unknown device")
	// ErrUnknownPath: a request named a path no device has.
	ErrUnknownPath = errors.New("unknown path")
	// ErrBadRequest: a request body or parameter is malformed or invalid.
	ErrBadRequest = errors.New("bad request")
	// ErrFabricUnavailable: the requested fabric cannot be used in this
	// build or on this machine.
	ErrFabricUnavailable = errors.New("fabric unavailable")
	// ErrDaemonRunning: another daemon answers on the control socket.
	ErrDaemonRunning = errors.New("another srp-mpathd answers on the control socket")
	// ErrNoDaemon: the control socket could not be reached (client side).
	ErrNoDaemon = errors.New("the daemon's control socket could not be reached")
	// ErrNotReady: the daemon has not finished starting.
	ErrNotReady = errors.New("daemon not ready")
	// ErrProbe: a SCSI probe of a path (REPORT LUNS, INQUIRY, VPD 0x83,
	// READ CAPACITY) failed; the path is not admitted.
	ErrProbe = errors.New("LU probe failed")
	// ErrIdentityMismatch: a path reports a different WWID or capacity
	// than the device's other paths or its stored identity; it is refused.
	ErrIdentityMismatch = errors.New("path reports a different LU identity")
	// ErrDiscoveryOff: a discovery request while discovery does not run.
	ErrDiscoveryOff = errors.New("fabric discovery is not running")
	// ErrUnknownTarget: a discovered target maps to no path this fabric
	// can log in to.
	ErrUnknownTarget = errors.New("discovered target not reachable by a login")
)

// OpError is a failed step of the daemon's start, stop or reload.
type OpError struct {
	Op  string // "open store", "build fabric", "listen", ...
	Err error
}

func (e *OpError) Error() string { return "daemon: " + e.Op + ": " + e.Err.Error() }
func (e *OpError) Unwrap() error { return e.Err }

// APIError is an error answer of the control API, as the client sees it.
// It wraps the sentinel its Code names, so errors.Is works across the
// socket.
type APIError struct {
	Status  int    // HTTP status
	Code    string // machine-readable: "unknown_device", "bad_request", ...
	Message string
}

func (e *APIError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return "control API: HTTP " + strconv.Itoa(e.Status)
}

// Unwrap maps the code back to its sentinel.
func (e *APIError) Unwrap() error {
	for _, c := range errorCodes {
		if c.code == e.Code {
			return c.err
		}
	}
	return nil
}

// errorCodes is the one translation between sentinels and API error codes
// (and HTTP statuses), used by both the server and the client.
var errorCodes = []struct {
	err    error
	code   string
	status int
}{
	{ErrUnknownDevice, "unknown_device", 404},
	{ErrUnknownPath, "unknown_path", 404},
	{ErrBadRequest, "bad_request", 400},
	{ErrNotReady, "not_ready", 503},
	{ErrDiscoveryOff, "discovery_off", 409},
}
