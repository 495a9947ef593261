// Package sim is a deterministic in-memory RDMA fabric with fault injection
// implementing the verbs seam. Everything above the seam (the SRP channel,
// paths, the daemon) runs on it for real in tests; a software SRP target is
// built on its target-side API (Listen, ConnRequest.Accept/Reject).
//
// # Model
//
// A Fabric holds devices (AddDevice: name and ports with IP addresses, GID
// and P_Key tables, LIDs) and links between ports (Connect). OpenDevice
// returns a handle (*Device, a verbs.Device) with its own protection domain,
// event channel and connections. Dial from source address X goes out of
// the port owning X, over its link, to the port owning the destination,
// and reaches a Listener there. Both ends are *Conn (verbs.Conn): RC queue
// pairs with per-QP rings preallocated at connect time.
//
// What is reproduced (research/srp-protocol.md §6.2):
//   - memory registry per handle: AllocBuffer/Register assign simulated
//     addresses and lkey/rkey; Register aliases the caller's memory, so
//     remote writes land in it. RDMA READ/WRITE check rkey, range and
//     access (and, for READ, the responder QP's responder resources); a
//     violation completes the requester with StatusRemAccessErr. A
//     zero-length RDMA WRITE is not checked (IBTA C9-88): the heartbeat.
//   - RC: in-order execution and completion; SEND without a posted receive
//     is RNR-NAKed and retried (RNRRetry 7: until a receive is posted;
//     otherwise StatusRNRRetryExcErr after RNRRetry × Config.RNRTimer); an
//     error completion moves the QP to ERR, which flushes every
//     outstanding and later work request with StatusWRFlushErr. An
//     unsignaled send that succeeds yields no completion (as in verbs);
//     errors and flushes always do. A send-queue slot is held until its
//     completion is polled, so CQ overflow cannot happen.
//   - transport retries: each transmission attempt fails when the link is
//     down or blackholed, the peer QP is not in RTS, or a seeded loss draw
//     says so; attempts repeat every ACK timeout (4.096 µs × 2^AckTimeout)
//     and after RetryCount retries the head completes with
//     StatusRetryExcErr at verbs.RetryBudget(RetryCount, AckTimeout) after
//     its first attempt.
//   - link knobs: Down/Up (PortError/PortActive async events on every port
//     of the link), Blackhole (no event at all), SetLatency, SetLoss.
//   - CM: Reject with private data (*verbs.RejectError), no listener
//     (ErrConnRefused, reason 8), connect through a blackhole (ErrTimeout
//     after Config.CMTimeout), Disconnect (DREQ: both QPs to ERR, both
//     sides get Disconnected, then TimewaitExit), Close of the peer =
//     Disconnect, Fabric/Device DisconnectAll for target-side teardown.
//     Private data arrives zero-padded to the CM field size.
//
// Management (mad.go, sa.go, dm.go, partition.go): Device.MAD opens a MAD
// port on an InfiniBand port (verbs.ErrNotSupported on RoCE). A link may
// have a SubnetManager (AddSubnetManager) that answers SA queries about
// the link's ports (ClassPortInfo, NodeRecord, PortInfoRecord, PathRecord
// with P_Key sharing, InformInfo subscriptions) and sends trap Reports
// (64/65 from SetInService, 144 when a DM agent comes or goes); Reregister
// and Handover raise ClientReregister and SMChange. A port may have a
// DMAgent (AddDMAgent) answering IOUnitInfo, IOControllerProfile and
// ServiceEntries with ib_srpt's checks, reachable only through a P_Key both
// ports share. SetPKeys rewrites a P_Key table (EventPKeyChange).
// SetPortUp takes one port's own link down or up (a pulled target cable):
// PortError/PortActive on its device, its RC traffic lost, and trap 65/64
// from its link's SM. MADs are answered synchronously; one nobody answers
// times out on the fabric clock.
//
// Not simulated: SRQs, atomics, address resolution timing (Dial fails at
// once when the route is missing), MAD latency and loss.
//
// # Time and delivery
//
// Work is executed at simulated time on the fabric's clock. With zero
// latency and no loss (the default) a request is executed and completed
// inside the PostSend (or the peer's PostRecv that ends an RNR wait) that
// causes it: no timer, no allocation. Otherwise each QP keeps at most one
// clock timer for its next due event (a retransmission, an arrival, an
// RNR deadline, a response); firing it advances the QP. With
// clock.Manual everything is driven by Advance and is deterministic: the
// same Seed and the same sequence of calls give the same completions at
// the same simulated times. Connection setup takes no simulated time
// except when it times out.
//
// A Conn's NotifyFD returns -1 (there are no fds here). Instead Ready
// returns a channel with a buffer of one that receives a value when a
// completion is queued after ArmNotify; a queue thread arms, polls once
// more, then waits on Ready.
//
// # Concurrency contract
//
// One mutex guards the whole fabric. Every method (data path included),
// and every timer callback, takes it, so the fabric is safe for concurrent
// use with clock.Real and any number of goroutines, and -race clean. The
// data-path methods (PostSend, PostRecv, Poll, ArmNotify) never block
// beyond that mutex and never allocate at zero latency. The package starts
// no goroutine; the Real clock runs timer callbacks on its own. Dial blocks
// its caller until the listener's owner answers (Accept/Reject from another
// goroutine), the CM timeout or ctx. Channels (Device.Events,
// Conn.CMEvents, Listener.Requests, Conn.Ready) are buffered and never
// block the fabric: a full event channel drops the event and counts it
// (Fabric.DroppedEvents).
//
// # Order of effects
//
// Within one call: the request is queued, then executed at the responder
// (data placed, the peer's receive completion queued and its Ready
// signalled), then the requester's completion queued. A QP entering ERR
// flushes its send queue and then its receive queue, in posting order,
// before the call returns. Disconnect moves this QP and then the peer's
// to ERR, and only then queues the peer's and this side's Disconnected.
// Link Down emits PortError on every port of the link before any
// completion it causes; Up emits PortActive first as well.
package sim
