package srp

import "encoding/binary"

// Offsets shared by the small IUs.
const (
	smallSolNot = 1
	smallReqLim = 4
	smallTag    = 8
)

// ILogout is SRP_I_LOGOUT (16 bytes). ib_srp never sends it and ib_srpt only
// logs it; disconnecting the CM connection is the usual logout.
type ILogout struct {
	Tag Tag
}

func (*ILogout) Opcode() Opcode { return OpILogout }
func (*ILogout) Len() int       { return ILogoutLen }

func (l *ILogout) Encode(b []byte) (int, error) {
	if err := prepDst(b, OpILogout, ILogoutLen); err != nil {
		return 0, err
	}
	b[0] = byte(OpILogout)
	putTag(b[smallTag:], l.Tag)
	return ILogoutLen, nil
}

func (l *ILogout) AppendTo(b []byte) ([]byte, error) {
	all, tail := grow(b, ILogoutLen)
	n, err := l.Encode(tail)
	return appendEnc(b, all, n, err)
}

func (l *ILogout) Decode(b []byte) error {
	if err := checkIU(b, OpILogout, ILogoutLen); err != nil {
		return err
	}
	*l = ILogout{Tag: getTag(b[smallTag:])}
	return nil
}

// TLogout is SRP_T_LOGOUT (16 bytes). The kernel defines no reason codes
// (they are in T10 SRP r16a); Reason is passed through.
type TLogout struct {
	SolNot uint8
	Reason uint32
	Tag    Tag
}

const tloReason = 4

func (*TLogout) Opcode() Opcode { return OpTLogout }
func (*TLogout) Len() int       { return TLogoutLen }

func (l *TLogout) Encode(b []byte) (int, error) {
	if err := prepDst(b, OpTLogout, TLogoutLen); err != nil {
		return 0, err
	}
	b[0] = byte(OpTLogout)
	b[smallSolNot] = l.SolNot
	binary.BigEndian.PutUint32(b[tloReason:], l.Reason)
	putTag(b[smallTag:], l.Tag)
	return TLogoutLen, nil
}

func (l *TLogout) AppendTo(b []byte) ([]byte, error) {
	all, tail := grow(b, TLogoutLen)
	n, err := l.Encode(tail)
	return appendEnc(b, all, n, err)
}

func (l *TLogout) Decode(b []byte) error {
	if err := checkIU(b, OpTLogout, TLogoutLen); err != nil {
		return err
	}
	*l = TLogout{
		SolNot: b[smallSolNot],
		Reason: binary.BigEndian.Uint32(b[tloReason:]),
		Tag:    getTag(b[smallTag:]),
	}
	return nil
}

// CredReq is SRP_CRED_REQ (16 bytes): the target grants credits and expects
// an SRP_CRED_RSP with the same tag. Answering consumes no credit.
type CredReq struct {
	SolNot      uint8
	ReqLimDelta uint32
	Tag         Tag
}

func (*CredReq) Opcode() Opcode { return OpCredReq }
func (*CredReq) Len() int       { return CredReqLen }

func (r *CredReq) Encode(b []byte) (int, error) {
	if err := prepDst(b, OpCredReq, CredReqLen); err != nil {
		return 0, err
	}
	b[0] = byte(OpCredReq)
	b[smallSolNot] = r.SolNot
	binary.BigEndian.PutUint32(b[smallReqLim:], r.ReqLimDelta)
	putTag(b[smallTag:], r.Tag)
	return CredReqLen, nil
}

func (r *CredReq) AppendTo(b []byte) ([]byte, error) {
	all, tail := grow(b, CredReqLen)
	n, err := r.Encode(tail)
	return appendEnc(b, all, n, err)
}

func (r *CredReq) Decode(b []byte) error {
	if err := checkIU(b, OpCredReq, CredReqLen); err != nil {
		return err
	}
	*r = CredReq{
		SolNot:      b[smallSolNot],
		ReqLimDelta: binary.BigEndian.Uint32(b[smallReqLim:]),
		Tag:         getTag(b[smallTag:]),
	}
	return nil
}

// CredRsp is SRP_CRED_RSP (16 bytes), the answer to SRP_CRED_REQ.
type CredRsp struct {
	Tag Tag
}

func (*CredRsp) Opcode() Opcode { return OpCredRsp }
func (*CredRsp) Len() int       { return CredRspLen }

func (r *CredRsp) Encode(b []byte) (int, error) {
	if err := prepDst(b, OpCredRsp, CredRspLen); err != nil {
		return 0, err
	}
	b[0] = byte(OpCredRsp)
	putTag(b[smallTag:], r.Tag)
	return CredRspLen, nil
}

func (r *CredRsp) AppendTo(b []byte) ([]byte, error) {
	all, tail := grow(b, CredRspLen)
	n, err := r.Encode(tail)
	return appendEnc(b, all, n, err)
}

func (r *CredRsp) Decode(b []byte) error {
	if err := checkIU(b, OpCredRsp, CredRspLen); err != nil {
		return err
	}
	*r = CredRsp{Tag: getTag(b[smallTag:])}
	return nil
}

// AerReq is SRP_AER_REQ (36 bytes + sense): an asynchronous event for a LUN,
// answered with SRP_AER_RSP. It also grants ReqLimDelta credits.
type AerReq struct {
	SolNot      uint8
	ReqLimDelta uint32
	Tag         Tag
	LUN         LUN
	// Sense (sense_data_len bytes) aliases the buffer given to Decode.
	Sense []byte
}

const (
	aerLUN      = 20
	aerSenseLen = 28
)

func (*AerReq) Opcode() Opcode { return OpAerReq }

// Len is 36 + len(Sense).
func (r *AerReq) Len() int { return AerReqLen + len(r.Sense) }

func (r *AerReq) Encode(b []byte) (int, error) {
	if uint64(len(r.Sense)) > maxU32 {
		return 0, encodeErr(OpAerReq, "sense_data_len", ErrBadLength)
	}
	n := r.Len()
	if err := prepDst(b, OpAerReq, n); err != nil {
		return 0, err
	}
	b[0] = byte(OpAerReq)
	b[smallSolNot] = r.SolNot
	binary.BigEndian.PutUint32(b[smallReqLim:], r.ReqLimDelta)
	putTag(b[smallTag:], r.Tag)
	copy(b[aerLUN:], r.LUN[:])
	binary.BigEndian.PutUint32(b[aerSenseLen:], uint32(len(r.Sense)))
	copy(b[AerReqLen:], r.Sense)
	return n, nil
}

func (r *AerReq) AppendTo(b []byte) ([]byte, error) {
	all, tail := grow(b, r.Len())
	n, err := r.Encode(tail)
	return appendEnc(b, all, n, err)
}

func (r *AerReq) Decode(b []byte) error {
	if err := checkIU(b, OpAerReq, AerReqLen); err != nil {
		return err
	}
	senseLen := uint64(binary.BigEndian.Uint32(b[aerSenseLen:]))
	if senseLen > uint64(len(b)-AerReqLen) {
		return decodeErr(OpAerReq, "sense_data_len", aerSenseLen, ErrBadLength)
	}
	*r = AerReq{
		SolNot:      b[smallSolNot],
		ReqLimDelta: binary.BigEndian.Uint32(b[smallReqLim:]),
		Tag:         getTag(b[smallTag:]),
		Sense:       aliasAt(b, AerReqLen, int(senseLen)),
	}
	copy(r.LUN[:], b[aerLUN:])
	return nil
}

// AerRsp is SRP_AER_RSP (16 bytes), the answer to SRP_AER_REQ.
type AerRsp struct {
	Tag Tag
}

func (*AerRsp) Opcode() Opcode { return OpAerRsp }
func (*AerRsp) Len() int       { return AerRspLen }

func (r *AerRsp) Encode(b []byte) (int, error) {
	if err := prepDst(b, OpAerRsp, AerRspLen); err != nil {
		return 0, err
	}
	b[0] = byte(OpAerRsp)
	putTag(b[smallTag:], r.Tag)
	return AerRspLen, nil
}

func (r *AerRsp) AppendTo(b []byte) ([]byte, error) {
	all, tail := grow(b, AerRspLen)
	n, err := r.Encode(tail)
	return appendEnc(b, all, n, err)
}

func (r *AerRsp) Decode(b []byte) error {
	if err := checkIU(b, OpAerRsp, AerRspLen); err != nil {
		return err
	}
	*r = AerRsp{Tag: getTag(b[smallTag:])}
	return nil
}
