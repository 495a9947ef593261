// Package ublk serves block devices through the Linux ublk driver, on
// io_uring (package uring) and golang.org/x/sys/unix only.
//
// # What it owns
//
//   - Control: the control device (/dev/ublk-control) on a 128-byte-SQE
//     ring. Commands are serialised; opcodes are tried ioctl-encoded first
//     and legacy on failure, and the encoding that worked is kept; the
//     GET_FEATURES probe is cached (Features).
//   - Device: one ublk device, created (Create: ADD_DEV with the requested
//     id, SET_PARAMS basic+discard, START_DEV), recovered (Recover:
//     START_USER_RECOVERY retrying EBUSY, END_USER_RECOVERY), or either
//     (Open: recover when the id exists with USER_RECOVERY and its server is
//     gone; delete a never-started leftover; refuse a live one). Devices are
//     added with USER_RECOVERY|USER_RECOVERY_REISSUE when Spec.Recovery is
//     set and the kernel has them.
//   - Queue: one goroutine per queue, locked to its OS thread for the
//     device's life (never unlocked: when it returns the thread exits, which
//     the kernel takes as the server's exit), with PR_SET_IO_FLUSHER, its
//     own ring, the descriptor mmap and per-tag off-heap buffers.
//   - The Handler seam (research §3.5): Start(q, r) on the queue thread,
//     non-blocking; Poll(q) drains completion sources; PollFDs(q) are armed
//     with POLL_ADD on the queue ring; completion by q.Complete on the queue
//     thread or q.CompleteRemote (mutex list + eventfd) from anywhere.
//     Optional: PollFDSet (the fd set changes; the queue removes the old
//     polls with POLL_REMOVE, ignores their late completions by epoch, and
//     arms the new set), PollReadier (consume an fd's readiness before
//     Poll) and PollTimer (the queue's sleep is bounded so timed work is
//     seen when due).
//     QueueHooks.OnQueueStart/OnQueueStop bracket the buffers' life, for
//     RDMA registration (Queue.Buffers, Queue.BufferMemory); Queue.Wake lets
//     the control plane make a queue thread poll again. BackendHandler adapts a blocking Backend (Memory,
//     Null, File) with a bounded per-queue worker pool.
//   - Serve: run one device until a context ends (the lab's entry point,
//     see package ublktest).
//
// The Driver seam (Driver, ControlConn, CharDev, QueueRing) separates all of
// this from the kernel: Linux is ublk_drv; package ublkfake models its
// rules for host tests.
//
// # Concurrency
//
// Control is safe for concurrent use (one command at a time). A Device's
// Stop and Detach are called once, from one goroutine. Queue methods other
// than CompleteRemote, ID, Depth, Buffers, Served and Device belong to the
// queue thread. Handler methods run on the queue thread and must not block
// (above all, no I/O to the device being served).
//
// # Order of effects
//
// Create: GET_FEATURES (cached) → ADD_DEV → SET_PARAMS → open /dev/ublkcN
// (retrying ENOENT/EBUSY) → per queue, on its thread: buffers, OnQueueStart,
// ring, descriptor mmap, FETCH for every tag, submit → START_DEV from the
// caller's goroutine while the queues serve the partition scan.
//
// Stop: STOP_DEV while the queues still serve → each tag gets ABORT → each
// queue: OnQueueStop, ring close and munmap, buffers unmapped, thread exits
// → char device closed → DEL_DEV_ASYNC (6.9+; DEL_DEV before). Nothing of
// ours references the device when it is deleted (pitfalls 5, 8, 9), and no
// fixed files are registered. The async delete does not wait for others
// who still hold the disk (an md array being torn down, a prober): the
// kernel frees the id when they let go. Every control command honours its
// context: a wait that outlives it is abandoned (ErrCommandAbandoned) and
// that Control must be closed, which interrupts the command.
//
// Recover: GET_DEV_INFO → START_USER_RECOVERY (EBUSY retried with backoff
// until ctx ends, while the old process's files go away) → queues as in
// Create, with the kernel's queue count, depth and buffer size → END_USER_RECOVERY.
// With REISSUE, requests the old server held are sent again (a write may run
// twice, pitfall 17).
//
// Detach: each queue leaves once its handler owns no request, without
// STOP_DEV; the kernel then quiesces a USER_RECOVERY device for a successor.
package ublk
