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
//
// # Initiator channel (channel*.go, login.go)
//
// Dial logs in over one RC connection (research §2.1): the 56-byte RDMA/CM
// login request (64-byte IB CM form with ChannelParams.IBCM) travels in the CM
// REQ private data from a bound source address; SRP_LOGIN_RSP returns in the
// REP. The IU size used is min(MaxIU, TargetMaxIU, the target's
// max_it_iu_len). Immediate data is used when granted and header+data fit; a
// REQ_IT_IU_LENGTH_TOO_LARGE reject of an immediate-data login is retried once
// without it. A reject carrying SRP_LOGIN_REJ is a *LoginError; a CM reject
// without one is the provider's *verbs.RejectError.
//
// Credits follow ib_srp (research §2.3): a command needs req_lim > 1 (the last
// credit is kept for task management), task management req_lim > 0; every
// SRP_RSP adds its delta (stale tags included); CRED_REQ/AER_REQ add theirs and
// are answered without spending a credit. A negative delta or a limit past
// 2^20 is a credit overflow, i.e. a protocol error.
//
// Concurrency: Submit, Poll, Abort, Outstanding and ArmNotify belong to one
// goroutine (the queue thread); they never block, never allocate and start no
// goroutine. Heartbeat, Info, Err, Failed, ForceError, ResetLUN and Close may be
// called from any goroutine. One mutex serialises every call into the
// connection; the queue thread takes it uncontended. The channel's only
// goroutine watches CM events (control plane) and ends at Close.
//
// Order of effects: Submit builds the SRP_CMD in the tag's registered transmit
// IU and posts one signaled SEND; on error nothing was posted. Poll dispatches
// receives by opcode and reposts them; a tag is reused only after its SEND
// completed and its Result was returned. On failure (error completion,
// DREQ/CM disconnect, T_LOGOUT, protocol error, task management timeout,
// ForceError, Close) the QP enters the error state first, then Err/Failed
// publish it, then the next Poll returns every outstanding command with
// ErrFlushed, so no DMA can reach a buffer whose command came back flushed.
package srp
