package srp

import (
	"encoding/binary"
	"fmt"
)

// MultiChanAction is the MULTI-CHANNEL ACTION of a login request (req_flags
// bits 1..0).
type MultiChanAction uint8

const (
	// MultiChanSingle: the target terminates every other channel of the
	// same I_T nexus (ib_srp uses it for its first channel).
	MultiChanSingle MultiChanAction = 0
	// MultiChanMulti: the target keeps the other channels.
	MultiChanMulti MultiChanAction = 1
)

func (a MultiChanAction) String() string {
	switch a {
	case MultiChanSingle:
		return "SINGLE"
	case MultiChanMulti:
		return "MULTI"
	}
	return fmt.Sprintf("MultiChanAction(%d)", uint8(a))
}

// multiChanMask selects the multi-channel bits of req_flags and rsp_flags
// (ib_srpt's SRP_MTCH_ACTION).
const multiChanMask = 0x03

// LoginReqFlags is req_flags of SRP_LOGIN_REQ.
type LoginReqFlags uint8

// LoginReqImmedRequested is SRP_IMMED_REQUESTED (SRP2): the initiator wants to
// send immediate data at ImmDataOffset.
const LoginReqImmedRequested LoginReqFlags = 0x80

// MakeLoginReqFlags combines a multi-channel action and the immediate data
// request into req_flags.
func MakeLoginReqFlags(a MultiChanAction, immed bool) LoginReqFlags {
	f := LoginReqFlags(a) & multiChanMask
	if immed {
		f |= LoginReqImmedRequested
	}
	return f
}

// MultiChan returns the multi-channel action bits.
func (f LoginReqFlags) MultiChan() MultiChanAction { return MultiChanAction(f & multiChanMask) }

// ImmedRequested reports SRP_IMMED_REQUESTED.
func (f LoginReqFlags) ImmedRequested() bool { return f&LoginReqImmedRequested != 0 }

func (f LoginReqFlags) String() string {
	s := f.MultiChan().String()
	if f.ImmedRequested() {
		s += "|IMMED_REQUESTED"
	}
	if rest := f &^ (multiChanMask | LoginReqImmedRequested); rest != 0 {
		s += fmt.Sprintf("|%#02x", uint8(rest))
	}
	return s
}

// MultiChanResult is the multi-channel result of a login response (rsp_flags
// bits 1..0).
type MultiChanResult uint8

const (
	MultiChanNoChannel  MultiChanResult = 0 // SRP_LOGIN_RSP_MULTICHAN_NO_CHAN
	MultiChanTerminated MultiChanResult = 1 // SRP_LOGIN_RSP_MULTICHAN_TERMINATED
	MultiChanMaintained MultiChanResult = 2 // SRP_LOGIN_RSP_MULTICHAN_MAINTAINED
)

func (r MultiChanResult) String() string {
	switch r {
	case MultiChanNoChannel:
		return "NO_CHAN"
	case MultiChanTerminated:
		return "TERMINATED"
	case MultiChanMaintained:
		return "MAINTAINED"
	}
	return fmt.Sprintf("MultiChanResult(%d)", uint8(r))
}

// LoginRspFlags is rsp_flags of SRP_LOGIN_RSP.
type LoginRspFlags uint8

// LoginRspImmedSupported is SRP_LOGIN_RSP_IMMED_SUPP (SRP2): the target
// accepts immediate data.
const LoginRspImmedSupported LoginRspFlags = 0x80

// MakeLoginRspFlags combines a multi-channel result and immediate data
// support into rsp_flags.
func MakeLoginRspFlags(r MultiChanResult, immed bool) LoginRspFlags {
	f := LoginRspFlags(r) & multiChanMask
	if immed {
		f |= LoginRspImmedSupported
	}
	return f
}

// MultiChan returns the multi-channel result bits.
func (f LoginRspFlags) MultiChan() MultiChanResult { return MultiChanResult(f & multiChanMask) }

// ImmedSupported reports SRP_LOGIN_RSP_IMMED_SUPP.
func (f LoginRspFlags) ImmedSupported() bool { return f&LoginRspImmedSupported != 0 }

func (f LoginRspFlags) String() string {
	s := f.MultiChan().String()
	if f.ImmedSupported() {
		s += "|IMMED_SUPP"
	}
	if rest := f &^ (multiChanMask | LoginRspImmedSupported); rest != 0 {
		s += fmt.Sprintf("|%#02x", uint8(rest))
	}
	return s
}

// LoginReq is SRP_LOGIN_REQ. It has two wire forms with different field
// orders: the 64-byte IB CM form (Encode, Decode) and the 56-byte RDMA/CM form
// (EncodeRDMA, DecodeRDMA), which fits the 56 bytes of private data RDMA/CM
// leaves after its own header.
type LoginReq struct {
	Tag Tag
	// ReqITIULen is the largest IU the initiator will send (req_it_iu_len).
	ReqITIULen uint32
	// ReqBufFmt are the descriptor formats the initiator may use.
	ReqBufFmt BufFormats
	ReqFlags  LoginReqFlags
	// ImmDataOffset is where immediate data starts in an SRP_CMD, counted
	// from its first byte (SRP2; ib_srp sends DefaultImmDataOffset).
	ImmDataOffset   uint16
	InitiatorPortID InitiatorPortID
	TargetPortID    TargetPortID
}

// IB CM form offsets (struct srp_login_req).
const (
	lrqTag      = 8
	lrqITIULen  = 16
	lrqBufFmt   = 24
	lrqFlags    = 26
	lrqImmOff   = 28
	lrqInitPort = 32
	lrqTgtPort  = 48
)

// RDMA/CM form offsets (struct srp_login_req_rdma).
const (
	lrrTag      = 0
	lrrBufFmt   = 8
	lrrFlags    = 10
	lrrOpcode   = 11
	lrrITIULen  = 12
	lrrInitPort = 16
	lrrTgtPort  = 32
	lrrImmOff   = 48
)

func (*LoginReq) Opcode() Opcode { return OpLoginReq }

// Len is the size of the IB CM form.
func (*LoginReq) Len() int { return LoginReqLen }

// Encode writes the 64-byte IB CM form.
func (r *LoginReq) Encode(b []byte) (int, error) {
	if err := prepDst(b, OpLoginReq, LoginReqLen); err != nil {
		return 0, err
	}
	b[0] = byte(OpLoginReq)
	putTag(b[lrqTag:], r.Tag)
	binary.BigEndian.PutUint32(b[lrqITIULen:], r.ReqITIULen)
	binary.BigEndian.PutUint16(b[lrqBufFmt:], uint16(r.ReqBufFmt))
	b[lrqFlags] = byte(r.ReqFlags)
	binary.BigEndian.PutUint16(b[lrqImmOff:], r.ImmDataOffset)
	putPortID(b[lrqInitPort:], r.InitiatorPortID.Ext, r.InitiatorPortID.GUID)
	putPortID(b[lrqTgtPort:], r.TargetPortID.IDExt, r.TargetPortID.IOCGUID)
	return LoginReqLen, nil
}

// AppendTo appends the 64-byte IB CM form.
func (r *LoginReq) AppendTo(b []byte) ([]byte, error) {
	all, tail := grow(b, LoginReqLen)
	n, err := r.Encode(tail)
	return appendEnc(b, all, n, err)
}

// Decode parses the 64-byte IB CM form.
func (r *LoginReq) Decode(b []byte) error {
	if err := checkIU(b, OpLoginReq, LoginReqLen); err != nil {
		return err
	}
	*r = LoginReq{
		Tag:             getTag(b[lrqTag:]),
		ReqITIULen:      binary.BigEndian.Uint32(b[lrqITIULen:]),
		ReqBufFmt:       BufFormats(binary.BigEndian.Uint16(b[lrqBufFmt:])),
		ReqFlags:        LoginReqFlags(b[lrqFlags]),
		ImmDataOffset:   binary.BigEndian.Uint16(b[lrqImmOff:]),
		InitiatorPortID: getInitiatorPortID(b[lrqInitPort:]),
		TargetPortID:    getTargetPortID(b[lrqTgtPort:]),
	}
	return nil
}

// EncodeRDMA writes the 56-byte RDMA/CM form.
func (r *LoginReq) EncodeRDMA(b []byte) (int, error) {
	if err := prepDst(b, OpLoginReq, LoginReqRDMALen); err != nil {
		return 0, err
	}
	putTag(b[lrrTag:], r.Tag)
	binary.BigEndian.PutUint16(b[lrrBufFmt:], uint16(r.ReqBufFmt))
	b[lrrFlags] = byte(r.ReqFlags)
	b[lrrOpcode] = byte(OpLoginReq)
	binary.BigEndian.PutUint32(b[lrrITIULen:], r.ReqITIULen)
	putPortID(b[lrrInitPort:], r.InitiatorPortID.Ext, r.InitiatorPortID.GUID)
	putPortID(b[lrrTgtPort:], r.TargetPortID.IDExt, r.TargetPortID.IOCGUID)
	binary.BigEndian.PutUint16(b[lrrImmOff:], r.ImmDataOffset)
	return LoginReqRDMALen, nil
}

// AppendRDMATo appends the 56-byte RDMA/CM form.
func (r *LoginReq) AppendRDMATo(b []byte) ([]byte, error) {
	all, tail := grow(b, LoginReqRDMALen)
	n, err := r.EncodeRDMA(tail)
	return appendEnc(b, all, n, err)
}

// DecodeRDMA parses the 56-byte RDMA/CM form. Longer private data is
// accepted (CM pads it); shorter fails with ErrShortBuffer, where ib_srpt
// rejects the connection without a LOGIN_REJ.
func (r *LoginReq) DecodeRDMA(b []byte) error {
	if len(b) < LoginReqRDMALen {
		return decodeErr(OpLoginReq, "iu", len(b), ErrShortBuffer)
	}
	if Opcode(b[lrrOpcode]) != OpLoginReq {
		return decodeErr(OpLoginReq, "opcode", lrrOpcode, ErrBadOpcode)
	}
	*r = LoginReq{
		Tag:             getTag(b[lrrTag:]),
		ReqBufFmt:       BufFormats(binary.BigEndian.Uint16(b[lrrBufFmt:])),
		ReqFlags:        LoginReqFlags(b[lrrFlags]),
		ReqITIULen:      binary.BigEndian.Uint32(b[lrrITIULen:]),
		InitiatorPortID: getInitiatorPortID(b[lrrInitPort:]),
		TargetPortID:    getTargetPortID(b[lrrTgtPort:]),
		ImmDataOffset:   binary.BigEndian.Uint16(b[lrrImmOff:]),
	}
	return nil
}

// LoginRsp is SRP_LOGIN_RSP (52 bytes), carried in the CM REP private data.
type LoginRsp struct {
	// ReqLimDelta is the initial request limit (credits).
	ReqLimDelta uint32
	Tag         Tag
	// MaxITIULen is the largest IU the target accepts from the initiator.
	MaxITIULen uint32
	// MaxTIIULen is the largest IU the target will send (ib_srpt echoes
	// the request's ReqITIULen here).
	MaxTIIULen uint32
	BufFmt     BufFormats
	RspFlags   LoginRspFlags
}

const (
	lrsReqLim  = 4
	lrsTag     = 8
	lrsMaxIT   = 16
	lrsMaxTI   = 20
	lrsBufFmt  = 24
	lrsRspFlag = 26
)

func (*LoginRsp) Opcode() Opcode { return OpLoginRsp }
func (*LoginRsp) Len() int       { return LoginRspLen }

func (r *LoginRsp) Encode(b []byte) (int, error) {
	if err := prepDst(b, OpLoginRsp, LoginRspLen); err != nil {
		return 0, err
	}
	b[0] = byte(OpLoginRsp)
	binary.BigEndian.PutUint32(b[lrsReqLim:], r.ReqLimDelta)
	putTag(b[lrsTag:], r.Tag)
	binary.BigEndian.PutUint32(b[lrsMaxIT:], r.MaxITIULen)
	binary.BigEndian.PutUint32(b[lrsMaxTI:], r.MaxTIIULen)
	binary.BigEndian.PutUint16(b[lrsBufFmt:], uint16(r.BufFmt))
	b[lrsRspFlag] = byte(r.RspFlags)
	return LoginRspLen, nil
}

func (r *LoginRsp) AppendTo(b []byte) ([]byte, error) {
	all, tail := grow(b, LoginRspLen)
	n, err := r.Encode(tail)
	return appendEnc(b, all, n, err)
}

func (r *LoginRsp) Decode(b []byte) error {
	if err := checkIU(b, OpLoginRsp, LoginRspLen); err != nil {
		return err
	}
	*r = LoginRsp{
		ReqLimDelta: binary.BigEndian.Uint32(b[lrsReqLim:]),
		Tag:         getTag(b[lrsTag:]),
		MaxITIULen:  binary.BigEndian.Uint32(b[lrsMaxIT:]),
		MaxTIIULen:  binary.BigEndian.Uint32(b[lrsMaxTI:]),
		BufFmt:      BufFormats(binary.BigEndian.Uint16(b[lrsBufFmt:])),
		RspFlags:    LoginRspFlags(b[lrsRspFlag]),
	}
	return nil
}

// RejReason is the reason code of SRP_LOGIN_REJ.
type RejReason uint32

// Login reject reasons (include/scsi/srp.h). The comments say when LIO's
// ib_srpt sends them.
const (
	RejUnableEstablishChannel   RejReason = 0x00010000 // never sent by ib_srpt
	RejInsufficientResources    RejReason = 0x00010001 // port disabled, allocation or QP setup failed
	RejReqITIULengthTooLarge    RejReason = 0x00010002 // req_it_iu_len > srp_max_req_size or < 64
	RejUnableAssociateChannel   RejReason = 0x00010003 // target_port_id does not match the service GUID
	RejUnsupportedDescriptorFmt RejReason = 0x00010004 // never sent by ib_srpt
	RejMultiChannelUnsupported  RejReason = 0x00010005 // never sent by ib_srpt
	RejChannelLimitReached      RejReason = 0x00010006 // session setup failed: in practice no ACL for the initiator
)

func (r RejReason) String() string {
	switch r {
	case RejUnableEstablishChannel:
		return "UNABLE_ESTABLISH_CHANNEL"
	case RejInsufficientResources:
		return "INSUFFICIENT_RESOURCES"
	case RejReqITIULengthTooLarge:
		return "REQ_IT_IU_LENGTH_TOO_LARGE"
	case RejUnableAssociateChannel:
		return "UNABLE_ASSOCIATE_CHANNEL"
	case RejUnsupportedDescriptorFmt:
		return "UNSUPPORTED_DESCRIPTOR_FMT"
	case RejMultiChannelUnsupported:
		return "MULTI_CHANNEL_UNSUPPORTED"
	case RejChannelLimitReached:
		return "CHANNEL_LIMIT_REACHED"
	}
	return fmt.Sprintf("RejReason(%#08x)", uint32(r))
}

// LoginRej is SRP_LOGIN_REJ (32 bytes), carried in the CM REJ private data
// (padded there: decode by opcode, not by length).
type LoginRej struct {
	Reason RejReason
	Tag    Tag
	// BufFmt are the formats the target supports (ib_srpt: 0x0006).
	BufFmt BufFormats
}

const (
	lrjReason = 4
	lrjTag    = 8
	lrjBufFmt = 24
)

func (*LoginRej) Opcode() Opcode { return OpLoginRej }
func (*LoginRej) Len() int       { return LoginRejLen }

func (r *LoginRej) Encode(b []byte) (int, error) {
	if err := prepDst(b, OpLoginRej, LoginRejLen); err != nil {
		return 0, err
	}
	b[0] = byte(OpLoginRej)
	binary.BigEndian.PutUint32(b[lrjReason:], uint32(r.Reason))
	putTag(b[lrjTag:], r.Tag)
	binary.BigEndian.PutUint16(b[lrjBufFmt:], uint16(r.BufFmt))
	return LoginRejLen, nil
}

func (r *LoginRej) AppendTo(b []byte) ([]byte, error) {
	all, tail := grow(b, LoginRejLen)
	n, err := r.Encode(tail)
	return appendEnc(b, all, n, err)
}

func (r *LoginRej) Decode(b []byte) error {
	if err := checkIU(b, OpLoginRej, LoginRejLen); err != nil {
		return err
	}
	*r = LoginRej{
		Reason: RejReason(binary.BigEndian.Uint32(b[lrjReason:])),
		Tag:    getTag(b[lrjTag:]),
		BufFmt: BufFormats(binary.BigEndian.Uint16(b[lrjBufFmt:])),
	}
	return nil
}
