// Package mad encodes and decodes the InfiniBand management datagrams that
// SRP target discovery uses: the common MAD header; SA MADs (RMPP and SA
// headers) with ClassPortInfo, NodeRecord, PortInfoRecord, PathRecord,
// InformInfo (trap subscriptions) and Notice (the body of a trap Report and
// its ReportResp); and device-management MADs with ClassPortInfo,
// IOUnitInfo, IOControllerProfile and ServiceEntries.
//
// Layouts follow rdma-core's srp_daemon (srp_daemon.h, srp_ib_types.h),
// libibumad and the kernel's ib_dm_mad.h, as summarised in
// research/srp-protocol.md §4.1–4.5; the golden bytes under testdata/ are
// the §5 vectors 16–21. Every multi-byte field is big-endian.
//
// # What it owns
//
// Pure codecs: no I/O, no clock, no goroutines. Decoders never panic on
// any input, alias the input buffer only through SAMessage.Data and
// DMMessage.Data, and check lengths before every read; encoders zero every
// reserved byte and refuse values that do not fit their wire field. The
// MAD status is decoded but not judged: callers turn it into an error with
// Status.Err, because srp_daemon's mistake of ignoring it (a "no records"
// PathRecord reply taken as a shared P_Key) is the caller's to avoid.
//
// # Concurrency contract
//
// Values are plain data; functions keep no state and are safe for
// concurrent use.
//
// # Order of effects
//
// None: nothing here has side effects beyond writing the caller's buffer.
// Encode writes the header first and the record last, so a record's Encode
// error leaves a partly written buffer that the caller must discard.
package mad
