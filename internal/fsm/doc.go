// Package fsm is the pure per-path state machine (running, blocked, fail-fast, lost) mirroring the kernel's scsi_transport_srp rport FSM.
//
// TODO(owner): concurrency contract and order of effects.
package fsm
