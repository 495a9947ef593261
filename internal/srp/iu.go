package srp

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Opcode is the first byte of every SRP information unit except the RDMA/CM
// login request, which carries it at byte 11 (see LoginReq.DecodeRDMA).
type Opcode uint8

// Opcodes (include/scsi/srp.h). I→T: sent by the initiator; T→I: by the target.
const (
	OpLoginReq Opcode = 0x00 // I→T
	OpTskMgmt  Opcode = 0x01 // I→T
	OpCmd      Opcode = 0x02 // I→T
	OpILogout  Opcode = 0x03 // I→T
	OpCredRsp  Opcode = 0x41 // I→T
	OpAerRsp   Opcode = 0x42 // I→T
	OpTLogout  Opcode = 0x80 // T→I
	OpCredReq  Opcode = 0x81 // T→I
	OpAerReq   Opcode = 0x82 // T→I
	OpLoginRsp Opcode = 0xC0 // T→I
	OpRsp      Opcode = 0xC1 // T→I
	OpLoginRej Opcode = 0xC2 // T→I
)

// Known reports whether o is an opcode this package can decode.
func (o Opcode) Known() bool {
	switch o {
	case OpLoginReq, OpTskMgmt, OpCmd, OpILogout, OpCredRsp, OpAerRsp,
		OpTLogout, OpCredReq, OpAerReq, OpLoginRsp, OpRsp, OpLoginRej:
		return true
	}
	return false
}

func (o Opcode) String() string {
	switch o {
	case OpLoginReq:
		return "SRP_LOGIN_REQ"
	case OpTskMgmt:
		return "SRP_TSK_MGMT"
	case OpCmd:
		return "SRP_CMD"
	case OpILogout:
		return "SRP_I_LOGOUT"
	case OpCredRsp:
		return "SRP_CRED_RSP"
	case OpAerRsp:
		return "SRP_AER_RSP"
	case OpTLogout:
		return "SRP_T_LOGOUT"
	case OpCredReq:
		return "SRP_CRED_REQ"
	case OpAerReq:
		return "SRP_AER_REQ"
	case OpLoginRsp:
		return "SRP_LOGIN_RSP"
	case OpRsp:
		return "SRP_RSP"
	case OpLoginRej:
		return "SRP_LOGIN_REJ"
	}
	return fmt.Sprintf("Opcode(%#02x)", uint8(o))
}

// Wire sizes of the fixed parts (the kernel BUILD_BUG_ONs the same values).
const (
	LoginReqLen     = 64 // SRP_LOGIN_REQ as IB CM REQ private data
	LoginReqRDMALen = 56 // SRP_LOGIN_REQ as RDMA/CM private data (92 - 36 byte CMA header)
	LoginRspLen     = 52
	LoginRejLen     = 32
	ILogoutLen      = 16
	TLogoutLen      = 16
	TskMgmtLen      = 48
	CmdLen          = 48 // SRP_CMD without additional CDB and descriptors
	RspLen          = 36 // SRP_RSP without response and sense data
	CredReqLen      = 16
	CredRspLen      = 16
	AerReqLen       = 36 // SRP_AER_REQ without sense data
	AerRspLen       = 16
	DirectBufLen    = 16 // struct srp_direct_buf
	IndirectBufLen  = 20 // struct srp_indirect_buf without desc_list
	ImmBufLen       = 4  // struct srp_imm_buf

	// CDBLen is the size of the CDB field of SRP_CMD; longer CDBs continue
	// in the additional CDB bytes.
	CDBLen = 16
	// MaxAddCDBLen is the largest ADDITIONAL CDB LENGTH: six bits counting
	// 4-byte words.
	MaxAddCDBLen = 252
	// MaxCDBLen is the longest CDB an SRP_CMD can carry.
	MaxCDBLen = CDBLen + MaxAddCDBLen
	// KernelMaxAddCDBLen is ib_srp's limit (SRP_MAX_ADD_CDB_LEN): 32-byte CDBs.
	KernelMaxAddCDBLen = 16
	// DefaultImmDataOffset is where ib_srp puts immediate data
	// (SRP_IMM_DATA_OFFSET = 48 + 16 + 4): after the largest header it sends,
	// so the offset does not depend on the CDB length.
	DefaultImmDataOffset = CmdLen + KernelMaxAddCDBLen + ImmBufLen
	// MinITIULen is the smallest req_it_iu_len ib_srpt accepts.
	MinITIULen = 64
)

// IOClass is the io_class of an SRP I/O controller (DM IOControllerProfile).
type IOClass uint16

const (
	// IOClassRev16A is SRP_REV16A_IB_IO_CLASS: port ids are id_ext ‖ GUID.
	IOClassRev16A IOClass = 0x0100
	// IOClassRev10 is SRP_REV10_IB_IO_CLASS: port ids are GUID ‖ id_ext.
	IOClassRev10 IOClass = 0xff00
)

func (c IOClass) String() string {
	switch c {
	case IOClassRev16A:
		return "SRP_REV16A"
	case IOClassRev10:
		return "SRP_REV10"
	}
	return fmt.Sprintf("IOClass(%#04x)", uint16(c))
}

// Tag is the 8-byte task tag of an IU. The target treats it as opaque bytes
// and echoes them, so any encoding works as long as SRP_CMD.tag and
// TSK_MGMT.task_tag use the same one. We encode it little-endian because that
// is what ib_srp puts on the wire on x86 (it stores a host-order u64): packet
// captures of both initiators then read the same, and SRP_TAG_TSK_MGMT (bit 31)
// lands in byte 3 as it does for the kernel.
type Tag uint64

// TagTskMgmt is SRP_TAG_TSK_MGMT: ib_srp sets bit 31 in the tag of its task
// management IUs so their SRP_RSP can be told from a command's.
const TagTskMgmt Tag = 1 << 31

// TagNoReq is SRP_TAG_NO_REQ (~0U): the task_tag ib_srp sends with a LUN
// RESET, where no single task is meant.
const TagNoReq Tag = 0xFFFFFFFF

func putTag(b []byte, t Tag) { binary.LittleEndian.PutUint64(b, uint64(t)) }
func getTag(b []byte) Tag    { return Tag(binary.LittleEndian.Uint64(b)) }

// String formats the tag in hex.
func (t Tag) String() string { return fmt.Sprintf("%#x", uint64(t)) }

// LUN is an 8-byte SAM logical unit number as it appears on the wire.
type LUN [8]byte

// LUNFromInt converts a Linux-style integer LUN to its SAM form the way the
// kernel's int_to_scsilun does: 16-bit levels, each big-endian, the first level
// first. LUN 1 becomes 00 01 00 00 00 00 00 00.
func LUNFromInt(n uint64) LUN {
	var l LUN
	for i := 0; i < len(l); i += 2 {
		binary.BigEndian.PutUint16(l[i:], uint16(n))
		n >>= 16
	}
	return l
}

// Int is the inverse of LUNFromInt (the kernel's scsilun_to_int).
func (l LUN) Int() uint64 {
	var n uint64
	for i := 0; i < len(l); i += 2 {
		n |= uint64(binary.BigEndian.Uint16(l[i:])) << (8 * i)
	}
	return n
}

func (l LUN) String() string { return fmt.Sprintf("%x", l[:]) }

// InitiatorPortID is the 16-byte SRP initiator port identifier. ib_srp builds it
// from the initiator_ext option and the interface id of GID index 0 of the
// local port.
type InitiatorPortID struct {
	Ext  uint64 // identifier extension (initiator_ext)
	GUID uint64 // port GUID / GID interface id
}

// TargetPortID is the 16-byte SRP target port identifier: the target's id_ext
// and the GUID of its I/O controller.
type TargetPortID struct {
	IDExt   uint64
	IOCGUID uint64
}

// String formats the id as "0x" and 32 hex digits, the form ib_srpt expects
// as an ACL name on a GID-named tport.
func (p InitiatorPortID) String() string { return fmt.Sprintf("0x%016x%016x", p.Ext, p.GUID) }

// String formats the id as "0x" and 32 hex digits, id_ext first.
func (p TargetPortID) String() string { return fmt.Sprintf("0x%016x%016x", p.IDExt, p.IOCGUID) }

// Rev10 returns the id with its halves swapped. SRP rev. 10 targets
// (IOClassRev10) expect GUID ‖ extension instead of extension ‖ GUID; encode
// p.Rev10() for them.
func (p InitiatorPortID) Rev10() InitiatorPortID { return InitiatorPortID{Ext: p.GUID, GUID: p.Ext} }

// Rev10 returns the id with its halves swapped (see InitiatorPortID.Rev10).
func (p TargetPortID) Rev10() TargetPortID { return TargetPortID{IDExt: p.IOCGUID, IOCGUID: p.IDExt} }

func putPortID(b []byte, hi, lo uint64) {
	binary.BigEndian.PutUint64(b, hi)
	binary.BigEndian.PutUint64(b[8:], lo)
}

func getInitiatorPortID(b []byte) InitiatorPortID {
	return InitiatorPortID{Ext: binary.BigEndian.Uint64(b), GUID: binary.BigEndian.Uint64(b[8:])}
}

func getTargetPortID(b []byte) TargetPortID {
	return TargetPortID{IDExt: binary.BigEndian.Uint64(b), IOCGUID: binary.BigEndian.Uint64(b[8:])}
}

// BufFormats is the set of data buffer descriptor formats a login request
// offers (req_buf_fmt) or a login response accepts (buf_fmt).
type BufFormats uint16

const (
	BufFormatDirect   BufFormats = 0x0002 // SRP_BUF_FORMAT_DIRECT
	BufFormatIndirect BufFormats = 0x0004 // SRP_BUF_FORMAT_INDIRECT
)

func (f BufFormats) String() string {
	s := ""
	if f&BufFormatDirect != 0 {
		s += "|DIRECT"
	}
	if f&BufFormatIndirect != 0 {
		s += "|INDIRECT"
	}
	if rest := f &^ (BufFormatDirect | BufFormatIndirect); rest != 0 || s == "" {
		s += fmt.Sprintf("|%#06x", uint16(rest))
	}
	return s[1:]
}

// IU is implemented by every information unit type. Encode writes exactly
// Len() bytes (all reserved bytes zero) into b and fails with ErrShortBuffer if
// b is shorter; it never allocates. AppendTo appends the same bytes to b,
// growing it if needed. Decode parses b, which may be longer than the IU
// (receive buffers are), and overwrites every field of the receiver.
type IU interface {
	Opcode() Opcode
	Len() int
	Encode(b []byte) (int, error)
	AppendTo(b []byte) ([]byte, error)
	Decode(b []byte) error
}

var (
	_ IU = (*LoginReq)(nil)
	_ IU = (*LoginRsp)(nil)
	_ IU = (*LoginRej)(nil)
	_ IU = (*ILogout)(nil)
	_ IU = (*TLogout)(nil)
	_ IU = (*TskMgmt)(nil)
	_ IU = (*Cmd)(nil)
	_ IU = (*Rsp)(nil)
	_ IU = (*CredReq)(nil)
	_ IU = (*CredRsp)(nil)
	_ IU = (*AerReq)(nil)
	_ IU = (*AerRsp)(nil)
)

// PeekOpcode returns the opcode of a received IU (byte 0). It fails with
// ErrShortBuffer on an empty buffer and with ErrBadOpcode (returning the byte
// anyway) when the byte is no SRP opcode. Do not use it on RDMA/CM login
// request private data, whose opcode is at byte 11.
func PeekOpcode(b []byte) (Opcode, error) {
	if len(b) < 1 {
		return 0, decodeErr(0, "opcode", 0, ErrShortBuffer)
	}
	op := Opcode(b[0])
	if !op.Known() {
		return op, decodeErr(op, "opcode", 0, ErrBadOpcode)
	}
	return op, nil
}

// tagOffset is where every IU except the RDMA/CM login request keeps its tag.
const tagOffset = 8

// PeekTag returns the tag of a received IU (bytes 8..15), so a receiver can
// find the request a response belongs to before decoding it.
func PeekTag(b []byte) (Tag, error) {
	if len(b) < tagOffset+8 {
		var op Opcode
		if len(b) > 0 {
			op = Opcode(b[0])
		}
		return 0, decodeErr(op, "tag", tagOffset, ErrShortBuffer)
	}
	return getTag(b[tagOffset:]), nil
}

// DecodeIU decodes any IU by its opcode byte into a newly allocated value
// (SRP_LOGIN_REQ in its IB CM form).
// It is for control paths, simulators and logging; the data path decodes into
// preallocated values with the types' Decode methods.
func DecodeIU(b []byte) (IU, error) {
	op, err := PeekOpcode(b)
	if err != nil {
		return nil, err
	}
	var iu IU
	switch op {
	case OpLoginReq:
		iu = new(LoginReq)
	case OpTskMgmt:
		iu = new(TskMgmt)
	case OpCmd:
		iu = new(Cmd)
	case OpILogout:
		iu = new(ILogout)
	case OpCredRsp:
		iu = new(CredRsp)
	case OpAerRsp:
		iu = new(AerRsp)
	case OpTLogout:
		iu = new(TLogout)
	case OpCredReq:
		iu = new(CredReq)
	case OpAerReq:
		iu = new(AerReq)
	case OpLoginRsp:
		iu = new(LoginRsp)
	case OpRsp:
		iu = new(Rsp)
	case OpLoginRej:
		iu = new(LoginRej)
	}
	if err := iu.Decode(b); err != nil {
		return nil, err
	}
	return iu, nil
}

// checkIU validates the opcode byte and the fixed length of an IU to decode.
func checkIU(b []byte, op Opcode, n int) error {
	if len(b) < 1 {
		return decodeErr(op, "opcode", 0, ErrShortBuffer)
	}
	if Opcode(b[0]) != op {
		return decodeErr(op, "opcode", 0, ErrBadOpcode)
	}
	if len(b) < n {
		return decodeErr(op, "iu", len(b), ErrShortBuffer)
	}
	return nil
}

// prepDst checks that b can hold n bytes and zeroes them, so reserved bytes
// are zero even when b is a reused transmit buffer.
func prepDst(b []byte, op Opcode, n int) error {
	if len(b) < n {
		return encodeErr(op, "iu", ErrShortBuffer)
	}
	clear(b[:n])
	return nil
}

// grow returns b extended by n bytes (reusing its capacity when it can) and
// the n new bytes.
func grow(b []byte, n int) (all, tail []byte) {
	b = slices.Grow(b, n)
	all = b[:len(b)+n]
	return all, all[len(b):]
}

// appendEnc finishes an AppendTo: on error it returns b unchanged.
func appendEnc(b, all []byte, n int, err error) ([]byte, error) {
	if err != nil {
		return b, err
	}
	return all[:len(b)+n], nil
}

// aliasAt returns b[off:off+n] with its capacity capped, so appending to the
// result cannot overwrite the bytes after it.
func aliasAt(b []byte, off, n int) []byte { return b[off : off+n : off+n] }
