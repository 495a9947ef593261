package srp

import (
	"encoding/binary"
	"fmt"
)

// RspFlags is the flags byte of SRP_RSP.
type RspFlags uint8

const (
	RspValid     RspFlags = 0x01 // RSPVALID: response data present (task management)
	SnsValid     RspFlags = 0x02 // SNSVALID: sense data present
	DataOutOver  RspFlags = 0x04 // DOOVER
	DataOutUnder RspFlags = 0x08 // DOUNDER
	DataInOver   RspFlags = 0x10 // DIOVER
	DataInUnder  RspFlags = 0x20 // DIUNDER
)

var rspFlagNames = [...]struct {
	f    RspFlags
	name string
}{
	{RspValid, "RSPVALID"}, {SnsValid, "SNSVALID"}, {DataOutOver, "DOOVER"},
	{DataOutUnder, "DOUNDER"}, {DataInOver, "DIOVER"}, {DataInUnder, "DIUNDER"},
}

func (f RspFlags) String() string {
	s := ""
	rest := f
	for _, n := range rspFlagNames {
		if f&n.f != 0 {
			s += "|" + n.name
			rest &^= n.f
		}
	}
	if rest != 0 || s == "" {
		s += fmt.Sprintf("|%#02x", uint8(rest))
	}
	return s[1:]
}

// TMResponse is the task management response code an SRP_RSP carries in byte
// 3 of its response data.
type TMResponse uint8

const (
	TMComplete    TMResponse = 0x00 // SRP_TSK_MGMT_COMPLETE
	TMFuncNotSupp TMResponse = 0x04 // SRP_TSK_MGMT_FUNC_NOT_SUPP
	TMFailed      TMResponse = 0x05 // SRP_TSK_MGMT_FAILED
)

const (
	// TMRespDataLen is resp_data_len of a task management response.
	TMRespDataLen  = 4
	tmRspCodeIndex = 3
)

func (r TMResponse) String() string {
	switch r {
	case TMComplete:
		return "COMPLETE"
	case TMFuncNotSupp:
		return "FUNC_NOT_SUPP"
	case TMFailed:
		return "FAILED"
	}
	return fmt.Sprintf("TMResponse(%#02x)", uint8(r))
}

// TMRespData returns the 4 bytes of response data that carry r.
func TMRespData(r TMResponse) [TMRespDataLen]byte {
	return [TMRespDataLen]byte{tmRspCodeIndex: byte(r)}
}

// Rsp is SRP_RSP: 36 bytes, then RespData, then Sense.
type Rsp struct {
	SolNot uint8
	// ReqLimDelta is the number of credits the response returns.
	ReqLimDelta uint32
	Tag         Tag
	Flags       RspFlags
	// Status is the SCSI status byte.
	Status uint8
	// DataOutResid and DataInResid are the residual counts; their
	// meaning (under- or overflow) is in Flags.
	DataOutResid uint32
	DataInResid  uint32
	// RespData (resp_data_len bytes) and Sense (sense_data_len bytes) are
	// subslices of the buffer given to Decode: they alias the receive
	// buffer and are only valid until it is reused. Encode writes their
	// lengths as given; the validity flags are the caller's business.
	RespData []byte
	Sense    []byte
}

const (
	rspSolNot   = 1
	rspReqLim   = 4
	rspTag      = 8
	rspFlags    = 18
	rspStatus   = 19
	rspDOResid  = 20
	rspDIResid  = 24
	rspSenseLen = 28
	rspRespLen  = 32
)

func (*Rsp) Opcode() Opcode { return OpRsp }

// Len is 36 + len(RespData) + len(Sense).
func (r *Rsp) Len() int { return RspLen + len(r.RespData) + len(r.Sense) }

func (r *Rsp) Encode(b []byte) (int, error) {
	if uint64(len(r.RespData)) > maxU32 {
		return 0, encodeErr(OpRsp, "resp_data_len", ErrBadLength)
	}
	if uint64(len(r.Sense)) > maxU32 {
		return 0, encodeErr(OpRsp, "sense_data_len", ErrBadLength)
	}
	n := r.Len()
	if err := prepDst(b, OpRsp, RspLen); err != nil {
		return 0, err
	}
	if len(b) < n {
		return 0, encodeErr(OpRsp, "iu", ErrShortBuffer)
	}
	b[0] = byte(OpRsp)
	b[rspSolNot] = r.SolNot
	binary.BigEndian.PutUint32(b[rspReqLim:], r.ReqLimDelta)
	putTag(b[rspTag:], r.Tag)
	b[rspFlags] = byte(r.Flags)
	b[rspStatus] = r.Status
	binary.BigEndian.PutUint32(b[rspDOResid:], r.DataOutResid)
	binary.BigEndian.PutUint32(b[rspDIResid:], r.DataInResid)
	binary.BigEndian.PutUint32(b[rspSenseLen:], uint32(len(r.Sense)))
	binary.BigEndian.PutUint32(b[rspRespLen:], uint32(len(r.RespData)))
	off := RspLen + copy(b[RspLen:], r.RespData)
	copy(b[off:], r.Sense)
	return n, nil
}

func (r *Rsp) AppendTo(b []byte) ([]byte, error) {
	all, tail := grow(b, r.Len())
	n, err := r.Encode(tail)
	return appendEnc(b, all, n, err)
}

// Decode parses an SRP_RSP without allocating. RespData and Sense alias b.
// Like ib_srp it takes the lengths at face value whatever Flags says; they
// must lie inside b.
func (r *Rsp) Decode(b []byte) error {
	if err := checkIU(b, OpRsp, RspLen); err != nil {
		return err
	}
	respLen := uint64(binary.BigEndian.Uint32(b[rspRespLen:]))
	senseLen := uint64(binary.BigEndian.Uint32(b[rspSenseLen:]))
	avail := uint64(len(b) - RspLen)
	if respLen > avail {
		return decodeErr(OpRsp, "resp_data_len", rspRespLen, ErrBadLength)
	}
	if senseLen > avail-respLen {
		return decodeErr(OpRsp, "sense_data_len", rspSenseLen, ErrBadLength)
	}
	*r = Rsp{
		SolNot:       b[rspSolNot],
		ReqLimDelta:  binary.BigEndian.Uint32(b[rspReqLim:]),
		Tag:          getTag(b[rspTag:]),
		Flags:        RspFlags(b[rspFlags]),
		Status:       b[rspStatus],
		DataOutResid: binary.BigEndian.Uint32(b[rspDOResid:]),
		DataInResid:  binary.BigEndian.Uint32(b[rspDIResid:]),
		RespData:     aliasAt(b, RspLen, int(respLen)),
		Sense:        aliasAt(b, RspLen+int(respLen), int(senseLen)),
	}
	return nil
}

// Residual returns the residual the way ib_srp reports it to SCSI: the
// DATA-IN underflow count if DIUNDER is set, else the DATA-OUT underflow count
// if DOUNDER is set, else 0. (ib_srp ignores the overflow flags.)
func (r *Rsp) Residual() uint32 {
	switch {
	case r.Flags&DataInUnder != 0:
		return r.DataInResid
	case r.Flags&DataOutUnder != 0:
		return r.DataOutResid
	}
	return 0
}

// ValidSense returns Sense if SNSVALID is set, else nil.
func (r *Rsp) ValidSense() []byte {
	if r.Flags&SnsValid == 0 {
		return nil
	}
	return r.Sense
}

// TMResponse returns the task management response code of a response to
// SRP_TSK_MGMT; ok is false unless RSPVALID is set and there are at least 4
// bytes of response data.
func (r *Rsp) TMResponse() (code TMResponse, ok bool) {
	if r.Flags&RspValid == 0 || len(r.RespData) < TMRespDataLen {
		return 0, false
	}
	return TMResponse(r.RespData[tmRspCodeIndex]), true
}

const maxU32 = 1<<32 - 1
