// Package rdma implements the verbs seam with cgo over rdma-core
// (libibverbs, librdmacm, libibumad; pkg-config names of the same names,
// Debian packages libibverbs-dev librdmacm-dev libibumad-dev, installed by
// `make deps`). It is built on Linux with cgo; any other build gets a stub
// whose Open fails with ErrNoCgo.
//
// # What it owns
//
//   - Fabric (Open): device enumeration (ibv_get_device_list) and opening.
//     A Device uses the ibv_context librdmacm opened for it
//     (rdma_get_devices), so that the QPs RDMA/CM creates live on the same
//     context and protection domain as the device's registered buffers.
//   - Device: queries (ibv_query_device/port/gid/pkey, ibv_get_pkey_index),
//     the async events (PORT_ERR, PORT_ACTIVE, LID/PKEY/GID/SM change,
//     client reregister, device fatal), registered memory (AllocBuffer maps
//     anonymous memory with unix.Mmap, never the Go heap; Register takes
//     caller memory that must be off-heap too), Dial, MAD, and Listen (test
//     support: the lab's passive peer; the daemon only dials).
//   - Conn: one RC QP with its CM id, one CQ shared by the send and receive
//     queues on a completion channel, and the data path.
//   - MAD ports over libibumad (InfiniBand only; RoCE has no SM or SA and
//     gets verbs.ErrNotSupported). Not yet exercised on hardware: the lab
//     is soft-RoCE.
//
// The C side is a set of thin shims (shim.h): ibv_post_send, ibv_post_recv,
// ibv_poll_cq and ibv_req_notify_cq are static inline, ibv_query_port and
// ibv_reg_mr are macros, and the work-request and CM-event structs hold
// unions. Shims take scalars, C memory, or Go memory without pointers for
// the duration of the call only: no Go pointer is kept by C. Private data is
// copied into C stack buffers before rdma_connect/accept/reject, and out of
// an event before rdma_ack_cm_event.
//
// # Dial
//
// As the kernel initiator (research/srp-protocol.md §2.1, §2.7): an event
// channel per connection; rdma_create_id(RDMA_PS_TCP); the ACK timeout set
// with rdma_set_option(RDMA_OPTION_ID_ACK_TIMEOUT) when DialParams asks for
// one; rdma_resolve_addr from the bound source address (mandatory: two
// endpoints of one kernel short-circuit over loopback otherwise); a check
// that the route resolved through this device (else ErrWrongDevice naming
// both); rdma_resolve_route; CQ, completion channel and QP; rdma_connect with
// the private data (at most 56 bytes), responder resources and initiator
// depth clamped to the device's max_qp_rd_atom / max_qp_init_rd_atom (librdmacm
// refuses larger values), retry and RNR retry counts clamped to 7,
// flow_control 1. ESTABLISHED returns the REP private data; REJECTED is a
// *verbs.RejectError carrying the REJ private data (CM reason 28 for an SRP
// login reject; reason 8, nothing listening, is also verbs.ErrConnRefused);
// ADDR_ERROR, ROUTE_ERROR, UNREACHABLE and CONNECT_ERROR are *CMEventError
// wrapping verbs.ErrUnreachable, ErrRouteResolve or ErrTimeout. A cancelled
// ctx ends any wait, and everything created so far is destroyed.
//
// # Concurrency contract
//
// Fabric, Device and the control-plane methods of Conn (CMEvents, Disconnect,
// ForceError, Close, QPTimeouts) are safe for concurrent use. The data-path
// methods (PostSend, PostRecv, Poll, ArmNotify, AckNotify) follow the seam's
// contract: one goroutine at a time per queue (the send queue may be shared
// under the caller's lock, as srp.Channel does for heartbeats; PostRecv uses
// its own scratch memory), never block, never allocate, never hand off to a
// goroutine. Their errors are bare values that need no allocation:
// verbs.ErrClosed, verbs.ErrInvalidWR (opcode or SGE count refused,
// ibv_post_* EINVAL), verbs.ErrQueueFull (ENOMEM: the work queue is full) or
// the provider's syscall.Errno. They hold a read lock that Close takes for
// writing, so Close never frees a QP under a running post or poll.
//
// Goroutines: one per Device (async events: poll(2) on the context's
// non-blocking async fd and an eventfd that Close signals), one per
// established Conn (its CM events, same pattern), one per MAD port (the
// receiver). Each exits when its owner is closed, and Close waits for it.
// Every other wait (Dial's CM events, Listener.Next, Accept) runs on the
// caller's goroutine. Event channels are buffered and never block the
// reader: a full channel drops the event and logs it (Device.DroppedEvents
// counts async ones).
//
// # Order of effects
//
//   - Every rdma_get_cm_event is acknowledged before the event is handled, its
//     private data copied first; so rdma_destroy_id never waits for an
//     unacknowledged event.
//   - On DISCONNECTED the CM reader calls rdma_disconnect (the DREP, and the
//     QP to ERR, like ib_srp) before delivering CMDisconnected.
//   - Conn.Close: rdma_disconnect (once), wait for data-path calls to leave,
//     stop the CM reader (CMEvents closed), then rdma_destroy_qp, drain and
//     ack CQ events, ibv_destroy_cq, ibv_destroy_comp_channel,
//     rdma_destroy_id, rdma_destroy_event_channel, free the C scratch.
//   - No CM message while the CM id's port is down, or (RoCE) the netdev
//     holding its source address is not up (the RC flush of a link set
//     down reaches user space before rxe marks the port down): Disconnect then only
//     moves the QP to ERR, and destroying a connection (Close, a failed
//     Dial) parks its CM id and event channel on the Device instead of
//     rdma_destroy_id (which would send a DREQ or REJ). soft-RoCE answers a
//     CM message that finds no route (its netdev set down) by moving its
//     GSI QP to ERR for good, after which no login on the device succeeds.
//     The async reader destroys a port's parked ids on its PORT_ACTIVE,
//     once their netdev is up too (retried every 250 ms); Device.Close
//     destroys the rest.
//   - Device.Close: stop the async reader (Events closed), destroy the
//     parked CM ids, ibv_dealloc_pd (fails with EBUSY while buffers or
//     connections of the device remain: close those first), then release
//     the context.
//   - Poll returns at most 32 completions per call (the size of the
//     connection's C ibv_wc array); AckNotify drains and acknowledges every
//     pending notification of the completion channel without blocking.
package rdma
