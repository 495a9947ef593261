// Package paths is the multipath device: one logical unit served over up to
// MaxPaths paths (each path one SRP login per ublk queue), with path groups,
// selectors, failback, no-path queueing, per-I/O deadlines, reroute,
// heartbeats and reconnect scheduling. It drives one fsm.Path per path.
//
// # What it owns
//
//   - Policy: dm-multipath's vocabulary. Grouping failover (one path per
//     group, ordered by priority then age), multibus (one group) or
//     group_by_prio; selectors service-time (latency EWMA × (in-flight+1),
//     the default), round-robin, queue-length; failback immediate, manual
//     or after N seconds; no_path_retry queue, fail or N seconds (counted
//     from the moment the last path went away); I/O timeout, abort timeout,
//     retry limits; the fsm timers; heartbeat interval and timeout;
//     reconnect jitter and concurrency limits.
//   - Device (control plane): the path records, their state machines and
//     timers, heartbeats, the reconnect scheduler, admin calls, status.
//   - Queue (data path): one per ublk queue, owned by that queue's thread.
//
// # Concurrency contract
//
// Data path. Every Queue method runs on the queue's own thread and never
// blocks, never starts a goroutine and does not allocate per I/O (tested
// with testing.AllocsPerRun). A queue reads the path table through an
// atomic pointer (no lock); it owns its tags, its per-path load figures
// (for the selector) and the srp channels of its queue index: it alone
// submits on them and polls them. It tells the control plane about a
// failure only it can see (an abort that went unanswered) through a
// per-path atomic mailbox and a non-blocking kick.
//
// Control plane. The Device's methods are safe from any goroutine; one
// mutex guards the path records. Its effects come from: the caller (AddPath,
// RemovePath, FailPath, ReinstatePath, ReportFailure, PortEvent, SetPolicy,
// Failback), one watcher goroutine per channel (Failed), clock timers (the
// fsm deadline of each path, the heartbeat tick, the reconnect queue,
// failback and no_path_retry expiry), reconnect goroutines (one per attempt)
// and one goroutine serving the queues' mailbox. Close stops and waits for
// all of them. The control plane never polls a channel: heartbeat ACKs are
// seen by the queue thread that polls the path's channel of the first bound
// queue, so queue threads must keep polling (or sleep armed on their
// channels) while the device lives; the heartbeat tick wakes that thread
// once before a heartbeat's deadline in case no fd of the channel does.
//
// Waking. The control plane wakes a queue thread through its Waker when the
// path table changed (a path blocked, returned, was added or removed) and,
// from a watchdog on the heartbeat tick, when the queue's own timed work
// fell due (Queue.NextDeadline: an I/O timeout, a retry backoff,
// no_path_retry running out), for threads that sleep without a timeout
// like ublk's. Queue memory may be given at New or later with BindQueue
// (ublk allocates it when the queue starts); it is registered once per RDMA
// device and queue, and UnbindQueue releases it.
//
// The ublk adapter (UblkHandler) follows the queue's channel set: when a
// reconnect or a new path changes the channels of the current table it
// bumps a generation (PollGen), and the ublk queue thread removes the old
// POLL_ADDs and arms the channels' completion fds anew. PollReady consumes a
// fired completion fd before the next Poll, and PollTimeout bounds the queue
// thread's sleep by the queue's next deadline (I/O timeouts, retry backoff,
// no_path_retry expiry), so timed work runs on time on an idle queue.
//
// # Order of effects
//
// A path failure (channel Failed, PORT_ERR, heartbeat miss, abort failure,
// admin fail) is stepped into the path's fsm; its actions run in slice
// order (fsm/doc.go):
//
//  1. ActionBlock: ForceError on every channel of the path (its QPs enter
//     the error state, so no late RDMA can land in a tag buffer), then
//     the path is published as unusable and every queue is woken. A queue
//     collects the path's commands as flushed Results on its next Poll
//     and reissues each on a usable path at once; the channels are closed
//     in the background afterwards (a closed channel still hands out its
//     queued Results).
//  2. ActionFailFast: published (status only): waiting I/O is governed by
//     no_path_retry and failfast flags, not by one path's timer.
//  3. ActionStartReconnect: queued in the reconnect scheduler, which starts
//     it after a random jitter once the global and per-target limits
//     allow; the attempt connects every queue's channel and reports
//     ReconnectSucceeded (channels installed, watched, then the fsm
//     reinstates or holds the path down) or ReconnectFailed.
//  4. ActionReinstate: the path is published as usable (the active group
//     is recomputed under the failback policy) and the queues are woken so
//     parked I/O moves at once.
//  5. ActionRemove: the channels are detached as for Block and the slot is
//     freed.
//
// An I/O is completed exactly once: every submission gets a new generation
// in the command id (tag in the low 16 bits), a Result is accepted only for
// the tag's current submission on the channel it was made on, and the
// srp channel hands out exactly one Result per submitted command (its
// response, its abort, or its flush). A queue keeps polling channels that
// left the table until they have no outstanding command.
//
// Per Result, the queue: ignores stale ones; reissues on another path after
// a transport error (flushed, protocol error, LUN reset) without counting a
// retry; retries an aborted command (I/O timeout) elsewhere, counting a
// retry; otherwise applies scsi.Classify: OK completes, retry-same-path
// resubmits on the same path (after RetryBackoff when the target asked for
// a pause), retry-other-path avoids the path for this I/O, fail completes
// with the error class. Retries beyond MaxRetries complete with the last
// error. An I/O with no usable path is parked: it fails at once when it
// carries FlagFailFast (md's failfast flags) or no_path_retry is fail, when
// the no-path time exceeds no_path_retry N, and waits otherwise.
//
// # Losing every path
//
// When dev_loss_tmo removes the device's last path (ActionRemove), the
// device is lost: its waiting I/O and every new I/O fail at once with
// ErrNoPath (EIO) whatever no_path_retry says — queueing for a target
// whose every path was declared gone would hang the application for good
// (multipath.conf's flush_on_last_del). The device itself stays; the first
// path added again (the daemon re-probes lost paths) ends the state, and
// I/O follows no_path_retry again.
//
// Errors reach the ublk edge as one of the package's sentinels; Errno maps
// them to an errno in one place.
package paths
