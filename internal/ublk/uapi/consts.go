package uapi

// ioctl direction bits of the _IOC encoding (asm-generic/ioctl.h).
const (
	iocWrite = 1
	iocRead  = 2

	iocNRShift   = 0
	iocTypeShift = 8
	iocSizeShift = 16
	iocDirShift  = 30

	// ublkIoctlType is the ioctl "type" byte of every ublk command ('u').
	ublkIoctlType = 'u'
)

// ioc builds an ioctl-encoded command number.
func ioc(dir, nr, size uint32) uint32 {
	return dir<<iocDirShift | size<<iocSizeShift | ublkIoctlType<<iocTypeShift | nr<<iocNRShift
}

// CtrlOp is the number (nr) of a control command on /dev/ublk-control.
type CtrlOp uint8

// Control command numbers (ublk_cmd.h). The legacy opcode equals the number.
const (
	CmdGetQueueAffinity  CtrlOp = 0x01
	CmdGetDevInfo        CtrlOp = 0x02
	CmdAddDev            CtrlOp = 0x04
	CmdDelDev            CtrlOp = 0x05
	CmdStartDev          CtrlOp = 0x06
	CmdStopDev           CtrlOp = 0x07
	CmdSetParams         CtrlOp = 0x08
	CmdGetParams         CtrlOp = 0x09
	CmdStartUserRecovery CtrlOp = 0x10
	CmdEndUserRecovery   CtrlOp = 0x11
	CmdGetDevInfo2       CtrlOp = 0x12
	CmdGetFeatures       CtrlOp = 0x13
	CmdDelDevAsync       CtrlOp = 0x14
	CmdUpdateSize        CtrlOp = 0x15
	CmdQuiesceDev        CtrlOp = 0x16
)

// ctrlReadOnly lists the commands the header encodes with _IOR (the kernel
// only writes to the caller); every other control command is _IOWR.
func (o CtrlOp) readOnly() bool {
	switch o {
	case CmdGetQueueAffinity, CmdGetDevInfo, CmdGetParams, CmdGetDevInfo2, CmdGetFeatures, CmdDelDevAsync:
		return true
	}
	return false
}

// Ioctl returns the ioctl-encoded opcode (UBLK_U_CMD_*), accepted from 6.4.
func (o CtrlOp) Ioctl() uint32 {
	dir := uint32(iocRead | iocWrite)
	if o.readOnly() {
		dir = iocRead
	}
	return ioc(dir, uint32(o), CtrlCmdSize)
}

// Legacy returns the legacy opcode (UBLK_CMD_*); kernels built with
// CONFIG_BLKDEV_UBLK_LEGACY_OPCODES=n reject it.
func (o CtrlOp) Legacy() uint32 { return uint32(o) }

// HasLegacy reports whether the command has a legacy opcode at all:
// commands added after 6.4 exist only ioctl-encoded.
func (o CtrlOp) HasLegacy() bool { return o < CmdGetFeatures }

func (o CtrlOp) String() string {
	switch o {
	case CmdGetQueueAffinity:
		return "GET_QUEUE_AFFINITY"
	case CmdGetDevInfo:
		return "GET_DEV_INFO"
	case CmdAddDev:
		return "ADD_DEV"
	case CmdDelDev:
		return "DEL_DEV"
	case CmdStartDev:
		return "START_DEV"
	case CmdStopDev:
		return "STOP_DEV"
	case CmdSetParams:
		return "SET_PARAMS"
	case CmdGetParams:
		return "GET_PARAMS"
	case CmdStartUserRecovery:
		return "START_USER_RECOVERY"
	case CmdEndUserRecovery:
		return "END_USER_RECOVERY"
	case CmdGetDevInfo2:
		return "GET_DEV_INFO2"
	case CmdGetFeatures:
		return "GET_FEATURES"
	case CmdDelDevAsync:
		return "DEL_DEV_ASYNC"
	case CmdUpdateSize:
		return "UPDATE_SIZE"
	case CmdQuiesceDev:
		return "QUIESCE_DEV"
	}
	return "CtrlOp(" + hexStr(uint64(o)) + ")"
}

// IsIoctlEncoded reports whether op is in the ioctl encoding (legacy
// opcodes are the bare command number, below 0x100).
func IsIoctlEncoded(op uint32) bool { return op>>iocTypeShift != 0 }

// CtrlOpOf decodes an opcode in either encoding back to its command number;
// ok is false for a value that is neither.
func CtrlOpOf(op uint32) (CtrlOp, bool) {
	if !IsIoctlEncoded(op) {
		return CtrlOp(op), CtrlOp(op).HasLegacy()
	}
	o := CtrlOp(op & 0xff)
	return o, o.Ioctl() == op
}

// IOOp is the number of a per-queue command on /dev/ublkcN.
type IOOp uint8

// I/O command numbers (ublk_cmd.h).
const (
	IOFetchReq          IOOp = 0x20
	IOCommitAndFetchReq IOOp = 0x21
	IONeedGetData       IOOp = 0x22
)

// Ioctl returns the ioctl-encoded opcode (UBLK_U_IO_*).
func (o IOOp) Ioctl() uint32 { return ioc(iocRead|iocWrite, uint32(o), IOCmdSize) }

// Legacy returns the legacy opcode (UBLK_IO_*).
func (o IOOp) Legacy() uint32 { return uint32(o) }

func (o IOOp) String() string {
	switch o {
	case IOFetchReq:
		return "FETCH_REQ"
	case IOCommitAndFetchReq:
		return "COMMIT_AND_FETCH_REQ"
	case IONeedGetData:
		return "NEED_GET_DATA"
	}
	return "IOOp(" + hexStr(uint64(o)) + ")"
}

// IOOpOf decodes an I/O opcode in either encoding.
func IOOpOf(op uint32) (IOOp, bool) {
	o := IOOp(op & 0xff)
	if o < IOFetchReq || o > IONeedGetData {
		return o, false
	}
	return o, op == o.Legacy() || op == o.Ioctl()
}

// Flag is one UBLK_F_* device feature bit (ublksrv_ctrl_dev_info.flags and
// GET_FEATURES).
type Flag uint64

// Device feature flags (research §2).
const (
	FlagSupportZeroCopy      Flag = 1 << 0
	FlagURingCmdCompInTask   Flag = 1 << 1
	FlagNeedGetData          Flag = 1 << 2
	FlagUserRecovery         Flag = 1 << 3
	FlagUserRecoveryReissue  Flag = 1 << 4
	FlagUnprivilegedDev      Flag = 1 << 5
	FlagCmdIoctlEncode       Flag = 1 << 6
	FlagUserCopy             Flag = 1 << 7
	FlagZoned                Flag = 1 << 8
	FlagUserRecoveryFailIO   Flag = 1 << 9
	FlagUpdateSize           Flag = 1 << 10
	FlagAutoBufReg           Flag = 1 << 11
	FlagQuiesce              Flag = 1 << 12
	FlagPerIODaemon          Flag = 1 << 13
	FlagBufRegOffDaemon      Flag = 1 << 14
	flagNamesCount                = 15
	FlagsRecoveryWithReissue      = FlagUserRecovery | FlagUserRecoveryReissue
)

var flagNames = [flagNamesCount]string{
	"SUPPORT_ZERO_COPY", "URING_CMD_COMP_IN_TASK", "NEED_GET_DATA", "USER_RECOVERY",
	"USER_RECOVERY_REISSUE", "UNPRIVILEGED_DEV", "CMD_IOCTL_ENCODE", "USER_COPY", "ZONED",
	"USER_RECOVERY_FAIL_IO", "UPDATE_SIZE", "AUTO_BUF_REG", "QUIESCE", "PER_IO_DAEMON",
	"BUF_REG_OFF_DAEMON",
}

// String lists the set bits by name, separated by '|'.
func (f Flag) String() string {
	if f == 0 {
		return "0"
	}
	s := ""
	for i := range 64 {
		bit := Flag(1) << i
		if f&bit == 0 {
			continue
		}
		if s != "" {
			s += "|"
		}
		if i < flagNamesCount {
			s += flagNames[i]
		} else {
			s += "bit" + hexStr(uint64(i))
		}
	}
	return s
}

// DevState is ublksrv_ctrl_dev_info.state.
type DevState uint16

// Device states.
const (
	StateDead     DevState = 0
	StateLive     DevState = 1
	StateQuiesced DevState = 2
	StateFailIO   DevState = 3
)

func (s DevState) String() string {
	switch s {
	case StateDead:
		return "DEAD"
	case StateLive:
		return "LIVE"
	case StateQuiesced:
		return "QUIESCED"
	case StateFailIO:
		return "FAIL_IO"
	}
	return "DevState(" + hexStr(uint64(s)) + ")"
}

// Op is the operation of an I/O descriptor (bits 0–7 of op_flags).
type Op uint8

// I/O operations (UBLK_IO_OP_*).
const (
	OpRead         Op = 0
	OpWrite        Op = 1
	OpFlush        Op = 2
	OpDiscard      Op = 3
	OpWriteSame    Op = 4
	OpWriteZeroes  Op = 5
	OpZoneOpen     Op = 10
	OpZoneClose    Op = 11
	OpZoneFinish   Op = 12
	OpZoneAppend   Op = 13
	OpZoneResetAll Op = 14
	OpZoneReset    Op = 15
	OpReportZones  Op = 18
)

func (o Op) String() string {
	switch o {
	case OpRead:
		return "READ"
	case OpWrite:
		return "WRITE"
	case OpFlush:
		return "FLUSH"
	case OpDiscard:
		return "DISCARD"
	case OpWriteSame:
		return "WRITE_SAME"
	case OpWriteZeroes:
		return "WRITE_ZEROES"
	case OpZoneOpen:
		return "ZONE_OPEN"
	case OpZoneClose:
		return "ZONE_CLOSE"
	case OpZoneFinish:
		return "ZONE_FINISH"
	case OpZoneAppend:
		return "ZONE_APPEND"
	case OpZoneResetAll:
		return "ZONE_RESET_ALL"
	case OpZoneReset:
		return "ZONE_RESET"
	case OpReportZones:
		return "REPORT_ZONES"
	}
	return "Op(" + hexStr(uint64(o)) + ")"
}

// IOFlag is one UBLK_IO_F_* bit of op_flags.
type IOFlag uint32

// Request flags.
const (
	IOFailFastDev       IOFlag = 1 << 8
	IOFailFastTransport IOFlag = 1 << 9
	IOFailFastDriver    IOFlag = 1 << 10
	IOMeta              IOFlag = 1 << 11
	IOFUA               IOFlag = 1 << 13
	IONoUnmap           IOFlag = 1 << 15
	IOSwap              IOFlag = 1 << 16
	IONeedRegBuf        IOFlag = 1 << 17
	IOIntegrity         IOFlag = 1 << 18

	// IOFailFastAny is every failfast bit: md sets them on its members.
	IOFailFastAny = IOFailFastDev | IOFailFastTransport | IOFailFastDriver

	opMask = 0xff
)

// String lists the set flags by name.
func (f IOFlag) String() string {
	names := [...]struct {
		bit  IOFlag
		name string
	}{
		{IOFailFastDev, "FAILFAST_DEV"}, {IOFailFastTransport, "FAILFAST_TRANSPORT"},
		{IOFailFastDriver, "FAILFAST_DRIVER"}, {IOMeta, "META"}, {IOFUA, "FUA"}, {IONoUnmap, "NOUNMAP"},
		{IOSwap, "SWAP"}, {IONeedRegBuf, "NEED_REG_BUF"}, {IOIntegrity, "INTEGRITY"},
	}
	if f == 0 {
		return "0"
	}
	s := ""
	rest := f
	for _, n := range names {
		if f&n.bit != 0 {
			if s != "" {
				s += "|"
			}
			s += n.name
			rest &^= n.bit
		}
	}
	if rest != 0 {
		if s != "" {
			s += "|"
		}
		s += hexStr(uint64(rest))
	}
	return s
}

// Result codes of an I/O command's CQE.
const (
	IOResOK          = 0
	IOResNeedGetData = 1
	// IOResAbort is -ENODEV: the device is stopping; the tag must not be re-armed.
	IOResAbort = -19
)

// Param types (ublk_params.types bits).
const (
	ParamTypeBasic    uint32 = 1 << 0
	ParamTypeDiscard  uint32 = 1 << 1
	ParamTypeDevt     uint32 = 1 << 2
	ParamTypeZoned    uint32 = 1 << 3
	ParamTypeDMAAlign uint32 = 1 << 4
	ParamTypeSegment  uint32 = 1 << 5
)

// Basic param attributes (ublk_param_basic.attrs).
const (
	AttrReadOnly      uint32 = 1 << 0
	AttrRotational    uint32 = 1 << 1
	AttrVolatileCache uint32 = 1 << 2
	AttrFUA           uint32 = 1 << 3
)

// Fixed values of the protocol.
const (
	// QueueIDNone goes in CtrlCmd.QueueID for device-wide commands.
	QueueIDNone = 0xffff
	// DevIDAny in ADD_DEV lets the kernel pick the device id.
	DevIDAny = 0xffffffff
	// MaxQueueDepth is the kernel's clamp of queue_depth (UBLK_MAX_QUEUE_DEPTH).
	MaxQueueDepth = 4096
	// SectorShift converts between sectors and bytes.
	SectorShift = 9
	// IOBufOffset is the pread/pwrite offset base of USER_COPY (UBLKSRV_IO_BUF_OFFSET).
	IOBufOffset = 0x80000000
	// CtrlDevPath is the control device node.
	CtrlDevPath = "/dev/ublk-control"
	// CharDevPrefix and BlockDevPrefix name the per-device nodes ("/dev/ublkc" + id).
	CharDevPrefix  = "/dev/ublkc"
	BlockDevPrefix = "/dev/ublkb"
)

// DescMmapOffset returns the offset of queue q's descriptor array in
// /dev/ublkcN: the kernel divides by the maximum-depth stride rounded to the
// page size, whatever the real depth (pitfall 1).
func DescMmapOffset(q uint16, pageSize int) int64 {
	return int64(q) * int64(roundUp(MaxQueueDepth*IODescSize, pageSize))
}

// DescMmapLen returns the exact length the kernel requires for a queue of
// the given depth.
func DescMmapLen(depth int, pageSize int) int { return roundUp(depth*IODescSize, pageSize) }

func roundUp(n, to int) int { return (n + to - 1) / to * to }

func hexStr(v uint64) string {
	const digits = "0123456789abcdef"
	if v == 0 {
		return "0x0"
	}
	var b [18]byte
	i := len(b)
	for v != 0 {
		i--
		b[i] = digits[v&0xf]
		v >>= 4
	}
	i--
	b[i] = 'x'
	i--
	b[i] = '0'
	return string(b[i:])
}
