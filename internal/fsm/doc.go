// Package fsm is the pure per-path state machine of srp-mpathd: the kernel's
// SRP transport rport FSM (drivers/scsi/scsi_transport_srp.c) with its
// states, timers, validity rules and reconnect backoff, extended with our
// failure inputs, admin fail/reinstate and flap damping.
//
// # What it owns
//
// One Path per SRP login (initiator port, target port). States: running,
// blocked, fail-fast, lost (the kernel's enum srp_rport_state) and
// held-down (ours). Timers, all counted from the first error after the path
// was last in service, all cancelled by a successful reconnect:
//
//   - reconnect_delay: first reconnect attempt; after the n-th consecutive
//     failed attempt the next is reconnect_delay*min(100, max(1, n-10)) later
//     (srp_reconnect_work; see Backoff). The kernel's backoff is this linear
//     one, not exponential, and we mirror it.
//   - fast_io_fail_tmo: blocked -> fail-fast (rport_fast_io_fail_timedout).
//   - dev_loss_tmo: -> lost, the path is removed (rport_dev_loss_timedout).
//     The device is never removed by this package or for this reason.
//
// Config.Validate applies srp_tmo_valid's six rules in the kernel's order and
// names the failed rule in a *ConfigError. Each timer may be Off (the
// kernel's -1).
//
// # Departures from the kernel, and why
//
//   - Every failure blocks a running path. The kernel leaves an rport
//     RUNNING when fast_io_fail_tmo and dev_loss_tmo are both off and only
//     fails it fast after the first failed reconnect; a multipath layer must
//     stop using a dead path at once, so ours blocks and goes fail-fast at
//     that same point.
//   - Failure inputs: QP error completion, CM disconnect/DREQ, PORT_ERR,
//     trap 65, heartbeat miss, an I/O deadline whose abort failed, protocol
//     errors. The kernel knows only "transport layer error"; we keep the kind
//     as the visible reason.
//   - Admin fail takes the path to fail-fast and keeps it there, with no
//     reconnects and no timers, until admin reinstate (which reconnects at
//     once and restarts dev_loss_tmo). The kernel has no admin fail.
//   - Flap damping: a path that left service FlapCount times within
//     FlapWindow is flapping; its next successful reconnect leads to
//     held-down, not running, until HoldDown has passed. Admin reinstate
//     clears the history. A failure during the hold-down blocks it again.
//     Settle (hold_down) holds down every reconnected path the same way,
//     flapping or not, so a path that just came back proves itself before
//     I/O returns to it.
//   - While a reconnect attempt is outstanding, further failures change
//     nothing (the attempt's result decides); the kernel might queue another
//     attempt. Results that arrive when no attempt is outstanding, or after
//     the path was lost, are ignored; so is a result in the very Step whose
//     timer starts the attempt (the driver cannot have run it yet).
//   - Times have nanosecond precision, not whole seconds.
//   - lost is terminal, as in the kernel (srp_rport_set_state refuses every
//     transition out of LOST): a path comes back only by New.
//
// # Concurrency
//
// None inside: no goroutines, no locks, no clock, no I/O, no logging (a
// test reads the package's imports and its calls to the time package). A
// Path is owned by one goroutine, its driver (internal/paths), which logs
// each transition (path, from, to, reason) from Status.
//
// # Order of effects
//
// The driver calls Step for every input with the time it happened, then
// carries out the returned actions in slice order, then arms one timer for
// NextDeadline and steps a Tick when it fires. Within one Step:
//
//  1. timers due at the event's time fire first, earliest first (at equal
//     times fast_io_fail, dev_loss, hold-down, reconnect), each with its own
//     actions;
//  2. the event applies;
//  3. timers it armed that are already due fire (fast_io_fail_tmo 0).
//
// Within one transition the actions come in this order, and the driver must
// keep it: ActionBlock (close admission, move the QPs to error, then reissue
// in-flight I/O elsewhere: no late RDMA may land in a buffer being reused)
// before ActionFailFast (fail what still waits for the path) before
// ActionRemove (tear down and forget; always last, nothing follows it for the
// path). ActionScheduleReconnect follows the Block that caused it.
// ActionStartReconnect asks for one attempt whose result the driver reports
// as EventReconnectSucceeded or EventReconnectFailed. ActionReinstate (or
// ActionHoldDown when flapping) ends a recovery.
package fsm
