package fsm

import (
	"strconv"
	"time"
)

// State is a path's state. The first four are the kernel's enum
// srp_rport_state (include/scsi/scsi_transport_srp.h) with its sysfs names;
// HeldDown is ours (flap damping).
type State uint8

const (
	// Running: the path carries I/O (SRP_RPORT_RUNNING).
	Running State = iota
	// Blocked: the transport failed; the path carries no new I/O, its
	// in-flight I/O was reissued elsewhere, the timers run
	// (SRP_RPORT_BLOCKED).
	Blocked
	// FailFast: fast_io_fail_tmo expired (or the admin failed the path); I/O
	// that waits for this path is failed at once (SRP_RPORT_FAIL_FAST).
	FailFast
	// Lost: dev_loss_tmo expired or the path was deleted; the path is
	// removed, never the device. Terminal: a path comes back only by being
	// added again with New (SRP_RPORT_LOST).
	Lost
	// HeldDown: reconnected, but the path flapped, so it carries no I/O
	// until the hold-down ends. In kernel terms it is RUNNING (the timers
	// are cancelled, failed_reconnects is 0) with I/O admission closed.
	HeldDown
)

var stateNames = [...]string{
	Running:  "running",
	Blocked:  "blocked",
	FailFast: "fail-fast",
	Lost:     "lost",
	HeldDown: "held-down",
}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool { return int(s) < len(stateNames) }

// InService reports whether the path may carry I/O.
func (s State) InService() bool { return s == Running }

// EventKind says what happened.
type EventKind uint8

const (
	// EventTick only advances time: it fires the timers that are due.
	EventTick EventKind = iota
	// EventFailure: the transport (or the admin) failed the path; see
	// FailureKind.
	EventFailure
	// EventReconnectSucceeded: the attempt started by ActionStartReconnect
	// logged in on every channel.
	EventReconnectSucceeded
	// EventReconnectFailed: that attempt failed.
	EventReconnectFailed
	// EventAdminReinstate: the admin puts the path back (undoes an admin
	// fail, ends a hold-down, asks for a reconnect now).
	EventAdminReinstate
	// EventDelete: the path is being removed (admin or discovery); the
	// kernel's rport "delete" attribute and srp_stop_rport_timers.
	EventDelete
	// EventPortActive: the local port the path leaves through became
	// active again (PORT_ACTIVE): a path out of service reconnects now
	// instead of waiting for its reconnect timer. The kernel waits.
	EventPortActive
)

var eventNames = [...]string{
	EventTick:               "tick",
	EventFailure:            "failure",
	EventReconnectSucceeded: "reconnect-succeeded",
	EventReconnectFailed:    "reconnect-failed",
	EventAdminReinstate:     "admin-reinstate",
	EventDelete:             "delete",
	EventPortActive:         "port-active",
}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "event(" + strconv.Itoa(int(k)) + ")"
}

// FailureKind is what took a path out of service. In the kernel every one of
// these is a "transport layer error" that calls srp_start_tl_fail_timers;
// we keep the kind so the reason is visible.
type FailureKind uint8

const (
	// FailureUnspecified is the zero value; Step treats it as a transport
	// failure like any other.
	FailureUnspecified FailureKind = iota
	// QPError: a work completion with an error status (ib_srp
	// srp_handle_qp_err).
	QPError
	// CMDisconnect: a CM DREQ or RDMA/CM DISCONNECTED from the target.
	CMDisconnect
	// PortError: IBV_EVENT_PORT_ERR on the local port.
	PortError
	// Trap65: the SM reported the remote GID out of service (trap 65).
	Trap65
	// HeartbeatMiss: the zero-length RDMA write heartbeat was not ACKed.
	HeartbeatMiss
	// AbortFailed: an I/O passed its deadline and its abort failed.
	AbortFailed
	// ProtocolError: the target sent something invalid (short IU, unknown
	// tag, credit overflow...).
	ProtocolError
	// AdminFail: the admin took the path out of service; it stays out,
	// without reconnects or timers, until EventAdminReinstate.
	AdminFail
)

var failureNames = [...]string{
	FailureUnspecified: "unspecified",
	QPError:            "qp-error",
	CMDisconnect:       "cm-disconnect",
	PortError:          "port-error",
	Trap65:             "trap-65",
	HeartbeatMiss:      "heartbeat-miss",
	AbortFailed:        "abort-failed",
	ProtocolError:      "protocol-error",
	AdminFail:          "admin-fail",
}

func (k FailureKind) String() string {
	if int(k) < len(failureNames) {
		return failureNames[k]
	}
	return "failure(" + strconv.Itoa(int(k)) + ")"
}

// ParseFailureKind maps a name printed by FailureKind.String back to the kind.
func ParseFailureKind(s string) (FailureKind, bool) {
	for k, name := range failureNames {
		if name == s {
			return FailureKind(k), true
		}
	}
	return 0, false
}

// Event is one input. Every event carries the time it happened (the driver's
// clock); Step never reads a clock. It is a plain value so Step does not
// allocate.
type Event struct {
	Kind EventKind
	Now  time.Time
	// Failure and Detail describe an EventFailure; Detail also carries the
	// error text of an EventReconnectFailed. Both are kept for Status.
	Failure FailureKind
	Detail  string
}

// Tick returns an EventTick at now.
func Tick(now time.Time) Event { return Event{Kind: EventTick, Now: now} }

// Fail returns an EventFailure of the given kind.
func Fail(now time.Time, kind FailureKind, detail string) Event {
	return Event{Kind: EventFailure, Now: now, Failure: kind, Detail: detail}
}

// ReconnectSucceeded returns an EventReconnectSucceeded.
func ReconnectSucceeded(now time.Time) Event {
	return Event{Kind: EventReconnectSucceeded, Now: now}
}

// ReconnectFailed returns an EventReconnectFailed with the attempt's error text.
func ReconnectFailed(now time.Time, detail string) Event {
	return Event{Kind: EventReconnectFailed, Now: now, Detail: detail}
}

// AdminReinstate returns an EventAdminReinstate.
func AdminReinstate(now time.Time) Event { return Event{Kind: EventAdminReinstate, Now: now} }

// Delete returns an EventDelete.
func Delete(now time.Time) Event { return Event{Kind: EventDelete, Now: now} }

// PortActive returns an EventPortActive.
func PortActive(now time.Time) Event { return Event{Kind: EventPortActive, Now: now} }

// ActionKind is an effect the driver must carry out, in slice order.
type ActionKind uint8

const (
	// ActionBlock: stop admitting I/O to the path; move its QPs to the
	// error state, and only then reissue its in-flight I/O on another path
	// (so no late RDMA can land in buffers that are being reused). Also
	// emitted to drop a connection that a reconnect made but nobody wants
	// any more (admin-failed path).
	ActionBlock ActionKind = iota + 1
	// ActionFailFast: fail the I/O that waits for this path (kernel:
	// terminate_rport_io with DID_TRANSPORT_FAILFAST); multipath routes it
	// elsewhere or, with no path left, applies no_path_retry.
	ActionFailFast
	// ActionScheduleReconnect: a reconnect attempt is due at Action.At. For
	// logs; the driver only needs NextDeadline.
	ActionScheduleReconnect
	// ActionStartReconnect: start one reconnect attempt now (ib_srp's
	// srp_rport_reconnect: disconnect, new QPs, log in all channels) and
	// report EventReconnectSucceeded or EventReconnectFailed.
	ActionStartReconnect
	// ActionHoldDown: the reconnect succeeded but the path flapped; it
	// stays out of service until Action.At.
	ActionHoldDown
	// ActionReinstate: the path is back in service.
	ActionReinstate
	// ActionRemove: the path is lost: tear it down and forget it. The
	// device stays. Always the last action for a path.
	ActionRemove
)

var actionNames = [...]string{
	ActionBlock:             "block",
	ActionFailFast:          "fail-fast",
	ActionScheduleReconnect: "schedule-reconnect",
	ActionStartReconnect:    "start-reconnect",
	ActionHoldDown:          "hold-down",
	ActionReinstate:         "reinstate",
	ActionRemove:            "remove",
}

func (k ActionKind) String() string {
	if int(k) < len(actionNames) && actionNames[k] != "" {
		return actionNames[k]
	}
	return "action(" + strconv.Itoa(int(k)) + ")"
}

// Action is one output of Step.
type Action struct {
	Kind ActionKind
	// At is the due time of ActionScheduleReconnect and the end of an
	// ActionHoldDown; zero otherwise.
	At time.Time
}

func (a Action) String() string { return a.Kind.String() }

// Cause is the failure that took the path out of service.
type Cause struct {
	Kind   FailureKind
	Detail string
	At     time.Time
}

// IsZero reports whether there was no failure yet.
func (c Cause) IsZero() bool { return c.At.IsZero() && c.Kind == 0 && c.Detail == "" }

func (c Cause) String() string {
	if c.Detail == "" {
		return c.Kind.String()
	}
	return c.Kind.String() + ": " + c.Detail
}

// Status is the visible state of a path (for the control API, metrics and
// the driver's log). Zero times mean "not set".
type Status struct {
	State State
	// Since is when State was entered (for a timer, its due time).
	Since time.Time
	// Reason is the failure that last took the path out of service. It
	// stays after the path returns, so "why did it fail last" is answerable.
	Reason Cause
	// FirstFailure is the error the running timers count from; zero while
	// the path is in service.
	FirstFailure time.Time
	// FastIOFailAt, DevLossAt, NextReconnect: armed deadlines.
	FastIOFailAt  time.Time
	DevLossAt     time.Time
	NextReconnect time.Time
	// Reconnecting: an attempt was started and its result is awaited.
	Reconnecting bool
	// FailedReconnects counts consecutive failed attempts (the kernel's
	// failed_reconnects); 0 after a success.
	FailedReconnects int
	// LastReconnectError is the Detail of the last EventReconnectFailed.
	LastReconnectError string
	// RecentFailures counts the failures within the flap window (at most
	// FlapCount); Flapping says the path will be held down after its next
	// successful reconnect, HeldDownUntil when a hold-down ends.
	RecentFailures int
	Flapping       bool
	HeldDownUntil  time.Time
	// AdminDown: the admin failed the path; only EventAdminReinstate
	// brings it back.
	AdminDown bool
}
