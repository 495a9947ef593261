// Package srptest is a software SRP target for tests: it serves
// memory-backed logical units over verbs/sim connections with the login,
// credit and SCSI behaviour of LIO's ib_srpt (research/srp-protocol.md §2).
//
// What it owns: the target side of SRP — login checks in ib_srpt's order
// (IU length bounds, port enabled, target port id = service GUID, ACL by
// initiator port id, SINGLE login terminating the nexus's other channels,
// immediate data only without SRQ), the credit window (every received
// SRP_CMD/SRP_TSK_MGMT consumes one, every SRP_RSP returns one plus the
// credits of aborted tasks), SCSI emulation (READ/WRITE(10/16), SYNCHRONIZE
// CACHE, UNMAP, WRITE SAME, INQUIRY with VPD 0x00/0x80/0x83/0xB0/0xB2, READ
// CAPACITY(10/16), TEST UNIT READY, REPORT LUNS, MODE SENSE caching page),
// task management (ABORT TASK, LUN RESET) and fault knobs: per LU (delay,
// hung commands that only an abort ends, CHECK CONDITION injection), per port
// (login reject with a reason, CM reject, disable, kill sessions) and per
// session (T_LOGOUT, CRED_REQ, AER_REQ, credit starvation, malformed IUs,
// DREQ).
//
// # Concurrency contract
//
// Every exported method is safe for concurrent use. The target is the
// "remote" side, so unlike the initiator it runs goroutines: one accept loop
// per port and one goroutine per session that owns its connection (it polls
// the completion queue and sleeps on the simulator's Ready channel). Session
// control methods (SendTLogout, HoldCredits, ...) queue work for that
// goroutine and return at once; their effect is ordered after every IU the
// session received before. Target.Close stops and waits for every goroutine.
//
// # Order of effects
//
// For one SRP_CMD the session: consumes a credit, applies the LU's fault
// knobs (CHECK CONDITION first, then hang, then delay), RDMA-reads data-out
// (or takes immediate data), executes the CDB against the LU under the LU's
// lock, RDMA-writes data-in, then sends SRP_RSP on the same RC queue pair, so
// the initiator sees the data before the response. LU data is copied in and
// out of per-task staging buffers; LU.ReadAt observes every write whose
// response was sent.
package srptest
