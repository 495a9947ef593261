package scsi

import (
	"encoding/binary"
	"math"
)

// Sense data response codes (SPC-4 4.5.1).
const (
	SenseFixedCurrent       byte = 0x70
	SenseFixedDeferred      byte = 0x71
	SenseDescriptorCurrent  byte = 0x72
	SenseDescriptorDeferred byte = 0x73
)

// Fixed-format layout (SPC-4 4.5.3).
const (
	fixedValid       = 0x80 // byte 0: information field is valid
	fixedFilemark    = 0x80 // byte 2
	fixedEOM         = 0x40
	fixedILI         = 0x20
	senseKeyMask     = 0x0F
	responseCodeMask = 0x7F
	fixedLen         = 18 // what we encode: header + 10 additional bytes
	fixedKeyOff      = 2
	fixedAddlOff     = 7
	fixedInfoOff     = 3
	fixedCmdOff      = 8
	fixedASCOff      = 12
	fixedASCQOff     = 13
	fixedFRUOff      = 14
	fixedSKSOff      = 15
	sksValid         = 0x80 // SKSV in the first sense-key-specific byte
	senseHeaderLen   = 8    // both formats: additional length at byte 7
)

// Descriptor-format layout (SPC-4 4.5.2).
const (
	descMinLen     = 4 // key, ASC, ASCQ present
	descKeyOff     = 1
	descASCOff     = 2
	descASCQOff    = 3
	descTypeInfo   = 0x00
	descTypeCmd    = 0x01
	descTypeSKS    = 0x02
	descTypeFRU    = 0x03
	descFRUAddl    = 0x02
	descTypeStream = 0x04
	descTypeBlock  = 0x05
	descInfoAddl   = 0x0A // additional length of the information/command descriptors
	descSKSAddl    = 0x06
	descStreamAddl = 0x02
	descInfoValid  = 0x80
	descStreamFM   = 0x80
	descStreamEOM  = 0x40
	descStreamILI  = 0x20
	descHdrLen     = 2
)

// Sense is decoded sense data of either format. The zero value is NO SENSE.
type Sense struct {
	// ResponseCode is 0x70/0x71 (fixed, current/deferred) or 0x72/0x73
	// (descriptor); it selects the format Append writes.
	ResponseCode byte
	Key          SenseKey
	ASC, ASCQ    byte

	// InfoValid is the VALID bit of the information field: for READ/WRITE
	// errors Information is the first failing LBA.
	InfoValid   bool
	Information uint64

	CommandSpecific uint64 // fixed bytes 8..11, or descriptor type 0x01

	// SKSValid is SKSV; SenseKeySpecific then holds the three
	// sense-key-specific bytes with the SKSV bit masked out of the first.
	SKSValid         bool
	SenseKeySpecific [3]byte

	FRU                byte // field replaceable unit code (fixed byte 14 or descriptor 0x03)
	Filemark, EOM, ILI bool // fixed byte 2, or the stream/block descriptors
}

// Descriptor reports whether s is descriptor-format sense.
func (s *Sense) Descriptor() bool {
	return s.ResponseCode == SenseDescriptorCurrent || s.ResponseCode == SenseDescriptorDeferred
}

// Deferred reports whether s describes an earlier command (response code
// 0x71/0x73), not the one it came with.
func (s *Sense) Deferred() bool {
	return s.ResponseCode == SenseFixedDeferred || s.ResponseCode == SenseDescriptorDeferred
}

// ParseSense decodes fixed or descriptor sense data. Like the kernel's
// scsi_normalize_sense it accepts short fixed sense (at least the sense key
// byte) and limits itself to the additional length the data announces; fields
// past the end read as zero. It never allocates unless it returns an error.
func ParseSense(b []byte) (Sense, error) {
	var s Sense
	if err := parseSense(b, &s); err != senseOK {
		return Sense{}, senseDecodeErr(err, b)
	}
	return s, nil
}

// senseFail is the allocation-free failure of parseSense; ParseSense turns it
// into a *DecodeError, Classify only needs to know it failed.
type senseFail uint8

const (
	senseOK senseFail = iota
	senseEmpty
	senseBadCode
	senseShortFixed
	senseShortDesc
	senseBadDescriptor
)

func senseDecodeErr(f senseFail, b []byte) error {
	switch f {
	case senseEmpty:
		return shortErr("sense", 1)
	case senseBadCode:
		return decodeErr("sense response code 0x"+hex2(b[0]&responseCodeMask), 0, ErrFormat)
	case senseShortFixed:
		return shortErr("fixed sense", fixedKeyOff+1)
	case senseShortDesc:
		return shortErr("descriptor sense", descMinLen)
	}
	return decodeErr("descriptor sense", senseHeaderLen, ErrFormat)
}

func parseSense(b []byte, s *Sense) senseFail {
	if len(b) == 0 {
		return senseEmpty
	}
	s.ResponseCode = b[0] & responseCodeMask
	switch s.ResponseCode {
	case SenseFixedCurrent, SenseFixedDeferred:
		return parseFixed(b, s)
	case SenseDescriptorCurrent, SenseDescriptorDeferred:
		return parseDescriptor(b, s)
	}
	return senseBadCode
}

func parseFixed(b []byte, s *Sense) senseFail {
	if len(b) <= fixedKeyOff {
		return senseShortFixed
	}
	s.Key = SenseKey(b[fixedKeyOff] & senseKeyMask)
	s.Filemark = b[fixedKeyOff]&fixedFilemark != 0
	s.EOM = b[fixedKeyOff]&fixedEOM != 0
	s.ILI = b[fixedKeyOff]&fixedILI != 0
	if len(b) >= fixedInfoOff+4 {
		s.Information = uint64(binary.BigEndian.Uint32(b[fixedInfoOff:]))
		s.InfoValid = b[0]&fixedValid != 0
	}
	if len(b) >= senseHeaderLen {
		b = b[:min(len(b), senseHeaderLen+int(b[fixedAddlOff]))]
	}
	if len(b) >= fixedCmdOff+4 {
		s.CommandSpecific = uint64(binary.BigEndian.Uint32(b[fixedCmdOff:]))
	}
	if len(b) > fixedASCOff {
		s.ASC = b[fixedASCOff]
	}
	if len(b) > fixedASCQOff {
		s.ASCQ = b[fixedASCQOff]
	}
	if len(b) > fixedFRUOff {
		s.FRU = b[fixedFRUOff]
	}
	if len(b) >= fixedSKSOff+3 {
		s.SKSValid = b[fixedSKSOff]&sksValid != 0
		s.SenseKeySpecific = [3]byte{b[fixedSKSOff] &^ sksValid, b[fixedSKSOff+1], b[fixedSKSOff+2]}
	}
	if !s.InfoValid {
		s.Information = 0
	}
	if !s.SKSValid {
		s.SenseKeySpecific = [3]byte{}
	}
	return senseOK
}

func parseDescriptor(b []byte, s *Sense) senseFail {
	if len(b) < descMinLen {
		return senseShortDesc
	}
	s.Key = SenseKey(b[descKeyOff] & senseKeyMask)
	s.ASC = b[descASCOff]
	s.ASCQ = b[descASCQOff]
	if len(b) < senseHeaderLen {
		return senseOK
	}
	announced := senseHeaderLen + int(b[fixedAddlOff])
	b = b[:min(len(b), announced)]
	for off := senseHeaderLen; off+descHdrLen <= len(b); {
		typ, n := b[off], int(b[off+1])
		end := off + descHdrLen + n
		if end > announced {
			// A descriptor running past the announced length: the sense
			// data is corrupt, not merely short.
			return senseBadDescriptor
		}
		if end > len(b) {
			// Cut by the transport's sense buffer (ib_srp keeps 96
			// bytes): keep what was complete, like scsi_normalize_sense.
			break
		}
		d := b[off:end]
		switch typ {
		case descTypeInfo:
			if n == descInfoAddl {
				s.InfoValid = d[2]&descInfoValid != 0
				s.Information = 0
				if s.InfoValid {
					s.Information = binary.BigEndian.Uint64(d[4:12])
				}
			}
		case descTypeCmd:
			if n == descInfoAddl {
				s.CommandSpecific = binary.BigEndian.Uint64(d[4:12])
			}
		case descTypeSKS:
			if n == descSKSAddl {
				s.SKSValid = d[4]&sksValid != 0
				s.SenseKeySpecific = [3]byte{}
				if s.SKSValid {
					s.SenseKeySpecific = [3]byte{d[4] &^ sksValid, d[5], d[6]}
				}
			}
		case descTypeFRU:
			if n == descFRUAddl {
				s.FRU = d[3]
			}
		case descTypeStream:
			if n >= descStreamAddl {
				s.Filemark = s.Filemark || d[3]&descStreamFM != 0
				s.EOM = s.EOM || d[3]&descStreamEOM != 0
				s.ILI = s.ILI || d[3]&descStreamILI != 0
			}
		case descTypeBlock:
			if n >= descStreamAddl {
				s.ILI = s.ILI || d[3]&descStreamILI != 0
			}
		}
		off = end
	}
	return senseOK
}

// Append encodes s in the format its ResponseCode names (fixed when it names
// none) and appends it to b; it allocates only if b lacks capacity (18 bytes
// fixed, at most 48 descriptor). Fixed format has a 32-bit information field:
// a larger Information is left out with VALID clear, as SPC-4 4.5.3 requires.
func (s *Sense) Append(b []byte) []byte {
	if s.Descriptor() {
		return s.appendDescriptor(b)
	}
	return s.appendFixed(b)
}

func (s *Sense) appendFixed(b []byte) []byte {
	var f [fixedLen]byte
	f[0] = s.ResponseCode
	if f[0] != SenseFixedDeferred {
		f[0] = SenseFixedCurrent
	}
	if s.InfoValid && s.Information <= math.MaxUint32 {
		f[0] |= fixedValid
		binary.BigEndian.PutUint32(f[fixedInfoOff:], uint32(s.Information))
	}
	f[2] = byte(s.Key) & senseKeyMask
	if s.Filemark {
		f[2] |= fixedFilemark
	}
	if s.EOM {
		f[2] |= fixedEOM
	}
	if s.ILI {
		f[2] |= fixedILI
	}
	f[fixedAddlOff] = fixedLen - senseHeaderLen
	binary.BigEndian.PutUint32(f[fixedCmdOff:], uint32(s.CommandSpecific))
	f[fixedASCOff] = s.ASC
	f[fixedASCQOff] = s.ASCQ
	f[fixedFRUOff] = s.FRU
	if s.SKSValid {
		f[fixedSKSOff] = s.SenseKeySpecific[0] | sksValid
		f[fixedSKSOff+1] = s.SenseKeySpecific[1]
		f[fixedSKSOff+2] = s.SenseKeySpecific[2]
	}
	return append(b, f[:]...)
}

func (s *Sense) appendDescriptor(b []byte) []byte {
	start := len(b)
	b = append(b, s.ResponseCode, byte(s.Key)&senseKeyMask, s.ASC, s.ASCQ, 0, 0, 0, 0)
	if s.InfoValid {
		b = append(b, descTypeInfo, descInfoAddl, descInfoValid, 0)
		b = binary.BigEndian.AppendUint64(b, s.Information)
	}
	if s.CommandSpecific != 0 {
		b = append(b, descTypeCmd, descInfoAddl, 0, 0)
		b = binary.BigEndian.AppendUint64(b, s.CommandSpecific)
	}
	if s.SKSValid {
		b = append(b, descTypeSKS, descSKSAddl, 0, 0,
			s.SenseKeySpecific[0]|sksValid, s.SenseKeySpecific[1], s.SenseKeySpecific[2], 0)
	}
	if s.FRU != 0 {
		b = append(b, descTypeFRU, descFRUAddl, 0, s.FRU)
	}
	if s.Filemark || s.EOM || s.ILI {
		var flags byte
		if s.Filemark {
			flags |= descStreamFM
		}
		if s.EOM {
			flags |= descStreamEOM
		}
		if s.ILI {
			flags |= descStreamILI
		}
		b = append(b, descTypeStream, descStreamAddl, 0, flags)
	}
	b[start+fixedAddlOff] = byte(len(b) - start - senseHeaderLen)
	return b
}

// String gives the key, ASC/ASCQ and, for the codes this package knows, their
// meaning, e.g. "MEDIUM ERROR (0x11/0x00 unrecovered read error)"; deferred
// sense ends in " deferred".
func (s Sense) String() string {
	str := s.Key.String() + " (0x" + hex2(s.ASC) + "/0x" + hex2(s.ASCQ)
	if d := ASCDescription(s.ASC, s.ASCQ); d != "" {
		str += " " + d
	}
	str += ")"
	if s.Deferred() {
		str += " deferred"
	}
	return str
}

// ASCDescription names the additional sense codes this package classifies or
// that targets like LIO commonly return (a compact subset of SPC-4 annex D,
// lower case). It returns "" for the rest.
func ASCDescription(asc, ascq byte) string {
	switch asc {
	case 0x00:
		if ascq == 0x00 {
			return "no additional sense information"
		}
	case 0x04:
		switch ascq {
		case 0x00:
			return "logical unit not ready, cause not reportable"
		case 0x01:
			return "logical unit is in process of becoming ready"
		case 0x02:
			return "logical unit not ready, initializing command required"
		case 0x03:
			return "logical unit not ready, manual intervention required"
		case 0x04:
			return "logical unit not ready, format in progress"
		case 0x07:
			return "logical unit not ready, operation in progress"
		case 0x09:
			return "logical unit not ready, self-test in progress"
		case 0x0A:
			return "logical unit not accessible, asymmetric access state transition"
		case 0x0B:
			return "logical unit not accessible, target port in standby state"
		case 0x0C:
			return "logical unit not accessible, target port in unavailable state"
		case 0x14:
			return "logical unit not ready, space allocation in progress"
		}
	case 0x05:
		if ascq == 0x00 {
			return "logical unit does not respond to selection"
		}
	case 0x08:
		if ascq == 0x00 {
			return "logical unit communication failure"
		}
	case 0x0C:
		if ascq == 0x00 {
			return "write error"
		}
	case 0x10:
		switch ascq {
		case 0x01:
			return "logical block guard check failed"
		case 0x02:
			return "logical block application tag check failed"
		case 0x03:
			return "logical block reference tag check failed"
		}
	case 0x11:
		if ascq == 0x00 {
			return "unrecovered read error"
		}
	case 0x14:
		if ascq == 0x01 {
			return "record not found"
		}
	case 0x1A:
		if ascq == 0x00 {
			return "parameter list length error"
		}
	case 0x20:
		if ascq == 0x00 {
			return "invalid command operation code"
		}
	case 0x21:
		if ascq == 0x00 {
			return "logical block address out of range"
		}
	case 0x24:
		if ascq == 0x00 {
			return "invalid field in cdb"
		}
	case 0x25:
		if ascq == 0x00 {
			return "logical unit not supported"
		}
	case 0x26:
		if ascq == 0x00 {
			return "invalid field in parameter list"
		}
	case 0x27:
		switch ascq {
		case 0x00:
			return "write protected"
		case 0x07:
			return "space allocation failed write protect"
		}
	case 0x28:
		if ascq == 0x00 {
			return "not ready to ready change, medium may have changed"
		}
	case 0x29:
		switch ascq {
		case 0x00:
			return "power on, reset, or bus device reset occurred"
		case 0x01:
			return "power on occurred"
		case 0x02:
			return "scsi bus reset occurred"
		case 0x03:
			return "bus device reset function occurred"
		case 0x07:
			return "i_t nexus loss occurred"
		}
	case 0x2A:
		switch ascq {
		case 0x01:
			return "mode parameters changed"
		case 0x03:
			return "reservations preempted"
		case 0x04:
			return "reservations released"
		case 0x05:
			return "registrations preempted"
		case 0x06:
			return "asymmetric access state changed"
		case 0x09:
			return "capacity data has changed"
		}
	case 0x2F:
		if ascq == 0x00 {
			return "commands cleared by another initiator"
		}
	case 0x31:
		if ascq == 0x00 {
			return "medium format corrupted"
		}
	case 0x38:
		if ascq == 0x07 {
			return "thin provisioning soft threshold reached"
		}
	case 0x3A:
		if ascq == 0x00 {
			return "medium not present"
		}
	case 0x3E:
		switch ascq {
		case 0x01:
			return "logical unit failure"
		case 0x03:
			return "logical unit failed self-test"
		}
	case 0x3F:
		switch ascq {
		case 0x01:
			return "microcode has been changed"
		case 0x03:
			return "inquiry data has changed"
		case 0x0E:
			return "reported luns data has changed"
		}
	case 0x44:
		if ascq == 0x00 {
			return "internal target failure"
		}
	case 0x47:
		if ascq == 0x00 {
			return "scsi parity error"
		}
	case 0x4B:
		if ascq == 0x00 {
			return "data phase error"
		}
	case 0x4E:
		if ascq == 0x00 {
			return "overlapped commands attempted"
		}
	case 0x55:
		if ascq == 0x03 {
			return "insufficient resources"
		}
	case 0x5D:
		if ascq == 0x00 {
			return "failure prediction threshold exceeded"
		}
	}
	return ""
}
