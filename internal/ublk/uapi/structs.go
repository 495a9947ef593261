package uapi

import (
	"encoding/binary"
	"unsafe"
)

// Sizes of the kernel structs (research §1.4).
const (
	CtrlCmdSize      = 32
	DevInfoSize      = 64
	IODescSize       = 24
	IOCmdSize        = 16
	ParamBasicSize   = 32
	ParamDiscardSize = 20
	ParamDevtSize    = 16
	// ParamsSize is the size of ublk_params this mirror sends: the 6.1
	// header's (header, basic, discard, padded). Every kernel copies
	// min(len, sizeof) and masks unknown types, so it is valid everywhere.
	ParamsSize = 64
	// ParamsMaxSize is the latest header's sizeof(struct ublk_params); reads
	// (GET_PARAMS) use a buffer this large.
	ParamsMaxSize = 152
	// FeaturesSize is GET_FEATURES' payload (one u64).
	FeaturesSize = 8
)

// Offsets of the sub-structs inside ublk_params.
const (
	paramsBasicOff   = 8
	paramsDiscardOff = 40
	paramsDevtOff    = 60
)

var le = binary.LittleEndian

// CtrlCmd is struct ublksrv_ctrl_cmd, carried in a 128-byte SQE's cmd area.
type CtrlCmd struct {
	DevID   uint32
	QueueID uint16
	Len     uint16
	Addr    uint64
	Data    uint64
	// DevPathLen is the length of the char-device path prefixed to the
	// payload of GET_DEV_INFO2 and unprivileged commands (6.2+).
	DevPathLen uint16
	Pad        uint16
	Reserved   uint32
}

// IOCmd is struct ublksrv_io_cmd, carried in a 64-byte SQE's cmd area.
type IOCmd struct {
	QueueID uint16
	Tag     uint16
	Result  int32
	Addr    uint64
}

// IODesc is struct ublksrv_io_desc, read from the descriptor mmap.
type IODesc struct {
	OpFlags     uint32
	NrSectors   uint32
	StartSector uint64
	Addr        uint64
}

// DevInfo is struct ublksrv_ctrl_dev_info.
type DevInfo struct {
	NrHWQueues    uint16
	QueueDepth    uint16
	State         DevState
	Pad0          uint16
	MaxIOBufBytes uint32
	DevID         uint32
	ServerPID     int32
	Pad1          uint32
	Flags         Flag
	ServerFlags   uint64
	OwnerUID      uint32
	OwnerGID      uint32
	Reserved1     uint64
	Reserved2     uint64
}

// ParamBasic is struct ublk_param_basic.
type ParamBasic struct {
	Attrs            uint32
	LogicalBSShift   uint8
	PhysicalBSShift  uint8
	IOOptShift       uint8
	IOMinShift       uint8
	MaxSectors       uint32
	ChunkSectors     uint32
	DevSectors       uint64
	VirtBoundaryMask uint64
}

// ParamDiscard is struct ublk_param_discard.
type ParamDiscard struct {
	DiscardAlignment      uint32
	DiscardGranularity    uint32
	MaxDiscardSectors     uint32
	MaxWriteZeroesSectors uint32
	MaxDiscardSegments    uint16
	Reserved0             uint16
}

// ParamDevt is struct ublk_param_devt (read-only: filled by GET_PARAMS).
type ParamDevt struct {
	CharMajor uint32
	CharMinor uint32
	DiskMajor uint32
	DiskMinor uint32
}

// Params is the subset of struct ublk_params this project uses. Types says
// which sub-structs are valid.
type Params struct {
	Len     uint32
	Types   uint32
	Basic   ParamBasic
	Discard ParamDiscard
	Devt    ParamDevt
}

// Compile-time layout assertions: a negative array length fails the build
// when a mirror drifts from the kernel's size or offsets.
var (
	_ [CtrlCmdSize - unsafe.Sizeof(CtrlCmd{})]byte
	_ [unsafe.Sizeof(CtrlCmd{}) - CtrlCmdSize]byte
	_ [IOCmdSize - unsafe.Sizeof(IOCmd{})]byte
	_ [unsafe.Sizeof(IOCmd{}) - IOCmdSize]byte
	_ [IODescSize - unsafe.Sizeof(IODesc{})]byte
	_ [unsafe.Sizeof(IODesc{}) - IODescSize]byte
	_ [DevInfoSize - unsafe.Sizeof(DevInfo{})]byte
	_ [unsafe.Sizeof(DevInfo{}) - DevInfoSize]byte
	_ [ParamBasicSize - unsafe.Sizeof(ParamBasic{})]byte
	_ [unsafe.Sizeof(ParamBasic{}) - ParamBasicSize]byte
	_ [unsafe.Offsetof(CtrlCmd{}.Addr) - 8]byte
	_ [8 - unsafe.Offsetof(CtrlCmd{}.Addr)]byte
	_ [unsafe.Offsetof(CtrlCmd{}.DevPathLen) - 24]byte
	_ [24 - unsafe.Offsetof(CtrlCmd{}.DevPathLen)]byte
	_ [unsafe.Offsetof(DevInfo{}.Flags) - 24]byte
	_ [24 - unsafe.Offsetof(DevInfo{}.Flags)]byte
	_ [unsafe.Offsetof(DevInfo{}.ServerPID) - 16]byte
	_ [16 - unsafe.Offsetof(DevInfo{}.ServerPID)]byte
	_ [unsafe.Offsetof(ParamBasic{}.DevSectors) - 16]byte
	_ [16 - unsafe.Offsetof(ParamBasic{}.DevSectors)]byte
	_ [unsafe.Offsetof(IODesc{}.StartSector) - 8]byte
	_ [8 - unsafe.Offsetof(IODesc{}.StartSector)]byte
)

// Put encodes c into b, which must hold CtrlCmdSize bytes.
func (c *CtrlCmd) Put(b []byte) {
	_ = b[CtrlCmdSize-1]
	le.PutUint32(b[0:], c.DevID)
	le.PutUint16(b[4:], c.QueueID)
	le.PutUint16(b[6:], c.Len)
	le.PutUint64(b[8:], c.Addr)
	le.PutUint64(b[16:], c.Data)
	le.PutUint16(b[24:], c.DevPathLen)
	le.PutUint16(b[26:], c.Pad)
	le.PutUint32(b[28:], c.Reserved)
}

// DecodeCtrlCmd decodes a ublksrv_ctrl_cmd.
func DecodeCtrlCmd(b []byte) (CtrlCmd, error) {
	if len(b) < CtrlCmdSize {
		return CtrlCmd{}, &DecodeError{Struct: "ublksrv_ctrl_cmd", Need: CtrlCmdSize, Have: len(b)}
	}
	return CtrlCmd{
		DevID: le.Uint32(b[0:]), QueueID: le.Uint16(b[4:]), Len: le.Uint16(b[6:]), Addr: le.Uint64(b[8:]),
		Data: le.Uint64(b[16:]), DevPathLen: le.Uint16(b[24:]), Pad: le.Uint16(b[26:]), Reserved: le.Uint32(b[28:]),
	}, nil
}

// Put encodes c into b, which must hold IOCmdSize bytes.
func (c *IOCmd) Put(b []byte) {
	_ = b[IOCmdSize-1]
	le.PutUint16(b[0:], c.QueueID)
	le.PutUint16(b[2:], c.Tag)
	le.PutUint32(b[4:], uint32(c.Result))
	le.PutUint64(b[8:], c.Addr)
}

// DecodeIOCmd decodes a ublksrv_io_cmd.
func DecodeIOCmd(b []byte) (IOCmd, error) {
	if len(b) < IOCmdSize {
		return IOCmd{}, &DecodeError{Struct: "ublksrv_io_cmd", Need: IOCmdSize, Have: len(b)}
	}
	return IOCmd{QueueID: le.Uint16(b[0:]), Tag: le.Uint16(b[2:]), Result: int32(le.Uint32(b[4:])), Addr: le.Uint64(b[8:])}, nil
}

// Op is the descriptor's operation.
func (d IODesc) Op() Op { return Op(d.OpFlags & opMask) }

// Flags is the descriptor's request flags.
func (d IODesc) Flags() IOFlag { return IOFlag(d.OpFlags &^ opMask) }

// Put encodes d into b, which must hold IODescSize bytes (the fake writes
// descriptors; the kernel's are read-only to the server).
func (d *IODesc) Put(b []byte) {
	_ = b[IODescSize-1]
	le.PutUint32(b[0:], d.OpFlags)
	le.PutUint32(b[4:], d.NrSectors)
	le.PutUint64(b[8:], d.StartSector)
	le.PutUint64(b[16:], d.Addr)
}

// DecodeIODesc decodes a ublksrv_io_desc. It is on the I/O path: no
// allocation unless b is short.
func DecodeIODesc(b []byte) (IODesc, error) {
	if len(b) < IODescSize {
		return IODesc{}, &DecodeError{Struct: "ublksrv_io_desc", Need: IODescSize, Have: len(b)}
	}
	return IODesc{OpFlags: le.Uint32(b[0:]), NrSectors: le.Uint32(b[4:]), StartSector: le.Uint64(b[8:]), Addr: le.Uint64(b[16:])}, nil
}

// Put encodes i into b, which must hold DevInfoSize bytes.
func (i *DevInfo) Put(b []byte) {
	_ = b[DevInfoSize-1]
	le.PutUint16(b[0:], i.NrHWQueues)
	le.PutUint16(b[2:], i.QueueDepth)
	le.PutUint16(b[4:], uint16(i.State))
	le.PutUint16(b[6:], i.Pad0)
	le.PutUint32(b[8:], i.MaxIOBufBytes)
	le.PutUint32(b[12:], i.DevID)
	le.PutUint32(b[16:], uint32(i.ServerPID))
	le.PutUint32(b[20:], i.Pad1)
	le.PutUint64(b[24:], uint64(i.Flags))
	le.PutUint64(b[32:], i.ServerFlags)
	le.PutUint32(b[40:], i.OwnerUID)
	le.PutUint32(b[44:], i.OwnerGID)
	le.PutUint64(b[48:], i.Reserved1)
	le.PutUint64(b[56:], i.Reserved2)
}

// DecodeDevInfo decodes a ublksrv_ctrl_dev_info.
func DecodeDevInfo(b []byte) (DevInfo, error) {
	if len(b) < DevInfoSize {
		return DevInfo{}, &DecodeError{Struct: "ublksrv_ctrl_dev_info", Need: DevInfoSize, Have: len(b)}
	}
	return DevInfo{
		NrHWQueues: le.Uint16(b[0:]), QueueDepth: le.Uint16(b[2:]), State: DevState(le.Uint16(b[4:])),
		Pad0: le.Uint16(b[6:]), MaxIOBufBytes: le.Uint32(b[8:]), DevID: le.Uint32(b[12:]),
		ServerPID: int32(le.Uint32(b[16:])), Pad1: le.Uint32(b[20:]), Flags: Flag(le.Uint64(b[24:])),
		ServerFlags: le.Uint64(b[32:]), OwnerUID: le.Uint32(b[40:]), OwnerGID: le.Uint32(b[44:]),
		Reserved1: le.Uint64(b[48:]), Reserved2: le.Uint64(b[56:]),
	}, nil
}

// Put encodes p into b, which must hold p.Len bytes (at least the 8-byte
// header); sub-structs that do not fit in Len are left out, as the kernel
// would ignore them.
func (p *Params) Put(b []byte) {
	_ = b[7]
	le.PutUint32(b[0:], p.Len)
	le.PutUint32(b[4:], p.Types)
	if len(b) >= paramsBasicOff+ParamBasicSize {
		s := b[paramsBasicOff:]
		le.PutUint32(s[0:], p.Basic.Attrs)
		s[4], s[5], s[6], s[7] = p.Basic.LogicalBSShift, p.Basic.PhysicalBSShift, p.Basic.IOOptShift, p.Basic.IOMinShift
		le.PutUint32(s[8:], p.Basic.MaxSectors)
		le.PutUint32(s[12:], p.Basic.ChunkSectors)
		le.PutUint64(s[16:], p.Basic.DevSectors)
		le.PutUint64(s[24:], p.Basic.VirtBoundaryMask)
	}
	if len(b) >= paramsDiscardOff+ParamDiscardSize {
		s := b[paramsDiscardOff:]
		le.PutUint32(s[0:], p.Discard.DiscardAlignment)
		le.PutUint32(s[4:], p.Discard.DiscardGranularity)
		le.PutUint32(s[8:], p.Discard.MaxDiscardSectors)
		le.PutUint32(s[12:], p.Discard.MaxWriteZeroesSectors)
		le.PutUint16(s[16:], p.Discard.MaxDiscardSegments)
		le.PutUint16(s[18:], p.Discard.Reserved0)
	}
	if len(b) >= paramsDevtOff+ParamDevtSize {
		s := b[paramsDevtOff:]
		le.PutUint32(s[0:], p.Devt.CharMajor)
		le.PutUint32(s[4:], p.Devt.CharMinor)
		le.PutUint32(s[8:], p.Devt.DiskMajor)
		le.PutUint32(s[12:], p.Devt.DiskMinor)
	}
}

// DecodeParams decodes the header and the basic, discard and devt
// sub-structs of a ublk_params. Sub-structs beyond len(b) decode as zero;
// it is the caller's business whether Types claims them.
func DecodeParams(b []byte) (Params, error) {
	if len(b) < 8 {
		return Params{}, &DecodeError{Struct: "ublk_params", Need: 8, Have: len(b)}
	}
	var p Params
	p.Len, p.Types = le.Uint32(b[0:]), le.Uint32(b[4:])
	if len(b) >= paramsBasicOff+ParamBasicSize {
		s := b[paramsBasicOff:]
		p.Basic = ParamBasic{
			Attrs: le.Uint32(s[0:]), LogicalBSShift: s[4], PhysicalBSShift: s[5], IOOptShift: s[6], IOMinShift: s[7],
			MaxSectors: le.Uint32(s[8:]), ChunkSectors: le.Uint32(s[12:]), DevSectors: le.Uint64(s[16:]),
			VirtBoundaryMask: le.Uint64(s[24:]),
		}
	}
	if len(b) >= paramsDiscardOff+ParamDiscardSize {
		s := b[paramsDiscardOff:]
		p.Discard = ParamDiscard{
			DiscardAlignment: le.Uint32(s[0:]), DiscardGranularity: le.Uint32(s[4:]), MaxDiscardSectors: le.Uint32(s[8:]),
			MaxWriteZeroesSectors: le.Uint32(s[12:]), MaxDiscardSegments: le.Uint16(s[16:]), Reserved0: le.Uint16(s[18:]),
		}
	}
	if len(b) >= paramsDevtOff+ParamDevtSize {
		s := b[paramsDevtOff:]
		p.Devt = ParamDevt{CharMajor: le.Uint32(s[0:]), CharMinor: le.Uint32(s[4:]), DiskMajor: le.Uint32(s[8:]), DiskMinor: le.Uint32(s[12:])}
	}
	return p, nil
}
