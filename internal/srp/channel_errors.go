package srp

import (
	"errors"
	"fmt"
)

// Sentinel errors of the initiator Channel. Submit returns the first three
// bare (no allocation on the data path); Result.Err carries ErrFlushed,
// ErrProtocol, ErrAborted or ErrLUNReset bare; Err() and the control-plane
// calls wrap them with %w.
var (
	// ErrNoCredit: the target's request limit leaves no credit for a command
	// (one is always kept for task management). Nothing was posted; poll
	// and submit again.
	ErrNoCredit = errors.New("srp: no credit (request limit reached)")
	// ErrNoTag: every tag is in use (or its send has not completed yet).
	// Nothing was posted.
	ErrNoTag = errors.New("srp: no free tag")
	// ErrChannelFailed: the channel failed or was closed; Err tells why.
	ErrChannelFailed = errors.New("srp: channel failed")
	// ErrFlushed: the command was in flight when the channel failed; the
	// QP was moved to the error state first, so no late DMA can touch its
	// buffer. Retry it elsewhere.
	ErrFlushed = errors.New("srp: command flushed by channel failure")
	// ErrProtocol: the target broke the protocol (unknown tag, impossible
	// length, credit overflow, unknown IU). The channel is reset.
	ErrProtocol = errors.New("srp: protocol error from target")
	// ErrAborted: the command was aborted by Abort.
	ErrAborted = errors.New("srp: command aborted")
	// ErrLUNReset: the command was terminated by a LUN RESET.
	ErrLUNReset = errors.New("srp: command terminated by LUN reset")
	// ErrTargetLogout: the target sent SRP_T_LOGOUT (treated as a
	// transport error, as the kernel initiator does not handle it).
	ErrTargetLogout = errors.New("srp: target logout")
	// ErrDisconnected: the connection manager reported a disconnect (DREQ
	// from the target, or the connection broke).
	ErrDisconnected = errors.New("srp: disconnected")
	// ErrAbortTimeout: a task management request got no response in time.
	ErrAbortTimeout = errors.New("srp: task management timed out")
	// ErrTaskMgmt: the target answered a task management function with a
	// failure code.
	ErrTaskMgmt = errors.New("srp: task management function failed")
	// ErrForced: ForceError was called.
	ErrForced = errors.New("srp: channel forced into error")
	// ErrChannelClosed: Close was called.
	ErrChannelClosed = errors.New("srp: channel closed")
	// ErrBadCommand: the Command is malformed (CDB length, direction,
	// buffer); nothing was posted.
	ErrBadCommand = errors.New("srp: bad command")
	// ErrNotOutstanding: Abort named a command that is not in flight.
	ErrNotOutstanding = errors.New("srp: command not outstanding")
	// ErrBusy: no task management or heartbeat slot is free right now.
	ErrBusy = errors.New("srp: busy")
	// ErrLoginRejected: the target refused the login (see *LoginError).
	ErrLoginRejected = errors.New("srp: login rejected")
	// ErrBadParams: ChannelParams are invalid.
	ErrBadParams = errors.New("srp: bad channel parameters")
)

// LoginError is a login the target refused with an SRP_LOGIN_REJ, or one
// whose SRP_LOGIN_RSP was unusable. It wraps ErrLoginRejected (reject) or
// ErrProtocol (bad response).
type LoginError struct {
	// Reason is the SRP_LOGIN_REJ reason (0 if the target accepted but
	// answered with something unusable).
	Reason RejReason
	// Immediate tells whether the failed attempt asked for immediate data.
	Immediate bool
	// ReqITIULen is the req_it_iu_len of the failed attempt.
	ReqITIULen uint32
	Err        error
}

func (e *LoginError) Error() string {
	if e.Reason != 0 {
		return fmt.Sprintf("srp: login rejected: %v (req_it_iu_len %d, immediate %t)", e.Reason, e.ReqITIULen, e.Immediate)
	}
	return fmt.Sprintf("srp: login failed: %v", e.Err)
}

func (e *LoginError) Unwrap() error { return e.Err }

// ChannelError records which channel operation failed and why. It is the
// sticky error Channel.Err returns.
type ChannelError struct {
	Op     string // e.g. "poll", "submit", "cm event", "task management"
	Remote string
	Err    error
}

func (e *ChannelError) Error() string {
	return "srp: channel to " + e.Remote + ": " + e.Op + ": " + e.Err.Error()
}

func (e *ChannelError) Unwrap() error { return e.Err }
