// Package scsi builds SCSI CDBs, decodes and encodes the SCSI structures an
// SRP initiator (and the project's software SRP target) exchanges, and
// classifies a command's status and sense into one retry decision.
//
// What it owns:
//   - CDB builders (cdb.go): READ/WRITE(10/16) with FUA, chosen by RW from
//     the LBA and length; SYNCHRONIZE CACHE(10/16); UNMAP and its parameter
//     list; WRITE SAME(16) with UNMAP; INQUIRY (standard and VPD); READ
//     CAPACITY(16); TEST UNIT READY; REPORT LUNS; MODE SENSE(10).
//   - Decoders and encoders for fixed and descriptor sense, standard INQUIRY
//     data, VPD pages 0x00, 0x80, 0x83 (with the multipath-style WWID), 0xB0
//     and 0xB2, READ CAPACITY(16) data, REPORT LUNS data with SAM LUN
//     encodings, and MODE SENSE(10) data with the caching page.
//   - Classify: status + sense → OK / retry on the same path / retry on
//     another path / fail, with the blk_status-like ErrorClass the errno
//     edge needs. Its documentation cites the kernel code it mirrors.
//
// Concurrency contract: none needed. Every function is pure: it reads its
// arguments, writes only the buffer it was given (or returns new values),
// and keeps no state, so any number of goroutines or locked queue threads
// may call anything at once. Decoders never keep a reference to their input
// (they copy what they return).
//
// Order of effects: none; there is no I/O, logging or clock here. The data
// path's calls (RW, SyncCache, Classify, ParseSense on valid input, the
// Append encoders into a buffer with capacity) do not allocate; tests prove
// it with testing.AllocsPerRun.
//
// Decoders never panic on any input (each has a fuzz target) and fail with a
// *DecodeError wrapping one of the sentinels in errors.go. Where a decoder
// and an encoder exist, decode(encode(decode(b))) == decode(b) holds.
package scsi
