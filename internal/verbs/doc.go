// Package verbs is the RDMA seam: the small set of interfaces through which
// srp-mpathd talks to RDMA hardware (devices, ports, GIDs, P_Keys, async
// events, registered memory, RC connections set up through a connection
// manager, MAD ports), plus the sysfs/netlink mapping of RDMA devices to
// network devices.
//
// Two providers implement it: verbs/rdma (cgo over rdma-core, the real thing)
// and verbs/sim (a deterministic in-memory fabric with fault injection, the
// default for tests). Code above the seam never knows which one it runs on.
//
// # Concurrency contract
//
// Control-plane calls (Fabric, Device, Dial, Events, CMEvents, MAD) are safe
// for concurrent use. A Conn's data-path methods (PostSend, PostRecv, Poll,
// ArmNotify) are called from exactly one goroutine at a time — the ublk queue
// thread that owns the connection — and never block, never allocate and never
// hand work to another goroutine: DESIGN.md explains why (a goroutine handoff
// costs more than an RDMA round trip). Completions are therefore delivered by
// polling (Poll) plus a notification file descriptor for sleeping, not by a
// channel. Disconnect, ForceError and Close may be called from any goroutine.
//
// # Order of effects
//
// A Conn reports every receive, every signaled send and every send that
// failed exactly once through Poll, in posting order per queue (send queue,
// receive queue), including after the QP entered the error state (then with
// StatusFlushErr). A successful unsignaled send completes silently, as in
// verbs; its send-queue slot is freed by the next signaled completion. A CMEvent of kind
// Disconnected is delivered after the QP stopped processing new work.
package verbs
