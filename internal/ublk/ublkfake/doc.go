// Package ublkfake is a deterministic in-memory model of ublk_drv for
// host-side tests of package ublk, which has no kernel module here.
//
// A Kernel hands out Processes (each a ublk.Driver) and plays the block
// layer (Submit/Do). It enforces the driver's rules (research/ublk-go.md
// §1.5, §1.6, §2.1): ADD_DEV's dev_id and queue_id checks, SET_PARAMS only
// before START, START_DEV and END_USER_RECOVERY waiting for every tag's
// FETCH, the partition-scan read during START_DEV, one thread per queue,
// COMMIT only for tags the server owns, buffer addresses per tag, ABORT
// (-ENODEV) of armed tags on STOP_DEV, DEL_DEV refused (recorded as a
// violation: the kernel would hang) while the char device or a ring is
// open, and the recovery state machine: a killed server quiesces a
// USER_RECOVERY device, REISSUE requeues what the server owned,
// START_USER_RECOVERY answers -EBUSY until the old process's references are
// gone. Config selects the opcode encodings and features of 6.1, the lab's
// 6.12, or a LEGACY_OPCODES=n kernel.
//
// Concurrency: one mutex guards the model. Queue rings execute SQEs on the
// submitting thread (recording its tid, like the kernel's ubq_daemon) and
// sleep in poll(2) on an eventfd plus the POLL_ADD fds, so the queue
// runner's real handler fds work unchanged. An armed poll holds a duplicate
// of its fd, as io_uring holds the file, until it fires, is removed
// (POLL_REMOVE: -ECANCELED, or -ENOENT when gone) or the ring closes; a
// bounded wait (SubmitTimeout) uses poll(2)'s timeout. The data path does not
// allocate.
package ublkfake
