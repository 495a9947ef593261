// Package srp owns the SCSI RDMA Protocol: the information-unit codecs, the
// initiator Channel (login, credits, tags, commands, task management,
// disconnect) and fabric discovery (SA/DM MADs).
//
// # Information unit codecs (iu*.go)
//
// Every SRP information unit has a Go type implementing IU: LoginReq,
// LoginRsp, LoginRej, ILogout, TLogout, TskMgmt, Cmd, Rsp, CredReq, CredRsp,
// AerReq and AerRsp. The byte layouts are those of the kernel's
// include/scsi/srp.h (research/srp-protocol.md §1): every integer is
// big-endian except the 8-byte tags, which are opaque to the target and which
// this package encodes little-endian like ib_srp on x86 (see Tag).
// SRP_LOGIN_REQ has two wire forms: 64 bytes in IB CM private data
// (LoginReq.Encode/Decode) and 56 bytes, with a different field order, in
// RDMA/CM private data (LoginReq.EncodeRDMA/DecodeRDMA).
//
// Encoding: Encode(b) writes exactly Len() bytes into b, writing every
// reserved byte as zero, and never allocates or grows b. It is meant for a
// preallocated, registered transmit buffer: a too small b is an
// ErrShortBuffer, not a silent reallocation. AppendTo(b) is the append-style
// form for ordinary buffers. SRP_CMD with immediate data is written by
// Cmd.EncodeImm, which pads the header to the immediate data offset agreed at
// login.
//
// Decoding: Decode(b) accepts a b longer than the IU (receive buffers are),
// overwrites every field of its receiver, never panics, and on failure
// returns a *DecodeError naming the IU, the field and its offset, wrapping
// ErrShortBuffer, ErrBadOpcode, ErrBadLength, ErrBadFormat or ErrReserved.
// After a failed Decode the receiver's contents are unspecified. Reserved
// bytes are ignored, except the reserved low bits of add_cdb_len. Variable
// parts (Cmd.CDB, Rsp.RespData, Rsp.Sense, AerReq.Sense) are subslices of b:
// they alias the receive buffer and must be copied before it is reposted.
// Cmd.Decode reuses the capacity of its indirect descriptor lists. Decoding an
// SRP_RSP and encoding an SRP_CMD do not allocate (TestZeroAllocs). PeekOpcode
// and PeekTag look at a received IU before choosing its decoder.
//
// Concurrency: the codecs are pure functions of their arguments and keep no
// state; a value may be used by one goroutine at a time, like any Go struct.
package srp
