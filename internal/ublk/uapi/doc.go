// Package uapi mirrors include/uapi/linux/ublk_cmd.h: opcodes in both the
// legacy and the ioctl encoding, feature flags, device states, I/O ops and
// flags, and the structs exchanged with ublk_drv, with little-endian codecs.
//
// Each struct has a Go mirror whose size and field offsets are asserted at
// compile time (a drift fails the build), and explicit Put/Decode functions
// that the I/O path and the control path use on off-heap memory (mmap'd
// descriptors, SQE cmd areas, the control payload page). Decoders never panic
// and return a *DecodeError on short input; they do not allocate otherwise.
//
// Layouts and values come from research/ublk-go.md §1.3–§1.5. The package
// has no state and no concurrency concerns.
package uapi
