// Package uring is a minimal io_uring on golang.org/x/sys/unix: setup with
// optional 128-byte SQEs (the ublk control ring needs them), the SQ and CQ
// rings mapped into the process, SQE preparation helpers and
// submit-and-wait.
//
// Concurrency: a Ring belongs to one goroutine. ublk queue rings are used
// from one locked OS thread for the device's life; the control ring is
// serialised by its owner's mutex. Nothing here starts goroutines.
//
// Order of effects in Submit: the SQ tail is published with a release store,
// then io_uring_enter submits what the kernel has not consumed yet and, when
// asked, waits (GETEVENTS). EINTR is retried without resubmitting consumed
// SQEs. Peek reads the CQ tail with an acquire load and advances the head
// after copying the CQE. Memory an SQE points at (read/write buffers, URING_CMD
// payloads) must be off-heap or pinned until its CQE: the kernel may read it
// after io_uring_enter returns (io-wq punting).
package uring
