package mad

import (
	"encoding/binary"
	"fmt"
)

// Sizes of the management datagram and its headers (IBA 13.4.3, 15.2.1,
// 16.3.3; research/srp-protocol.md §4.1).
const (
	// Size is the size of one MAD on the wire (MAD_BLOCK_SIZE).
	Size = 256
	// HeaderLen is the common MAD header.
	HeaderLen = 24
	// SADataOffset is where an SA MAD's attribute data starts: the common
	// header, the 12-byte RMPP header and the 20-byte SA header.
	SADataOffset = 56
	// SADataLen is the attribute data of one non-RMPP SA MAD.
	SADataLen = Size - SADataOffset
	// DMDataOffset is where a device-management MAD's data starts: the
	// common header and 40 reserved bytes (IB_MGMT_DEVICE_HDR).
	DMDataOffset = 64
	// DMDataLen is the data of one DM MAD.
	DMDataLen = Size - DMDataOffset
	// saHeaderAfterRMPP is the part of the SA header the RMPP payload
	// length counts besides the records: SM_Key, AttributeOffset,
	// reserved, ComponentMask.
	saHeaderAfterRMPP = SADataOffset - rmppEnd
	rmppEnd           = 36
)

// BaseVersion is the only MAD base version.
const BaseVersion = 1

// Class is a management class.
type Class uint8

// Management classes used by discovery.
const (
	ClassSA Class = 0x03 // subnet administration
	ClassDM Class = 0x06 // device management (I/O units)
)

// Class versions srp_daemon uses (srpd.h).
const (
	SAClassVersion = 2
	DMClassVersion = 1
)

func (c Class) String() string {
	switch c {
	case ClassSA:
		return "SA"
	case ClassDM:
		return "DM"
	}
	return fmt.Sprintf("Class(%#02x)", uint8(c))
}

// Method is a MAD method.
type Method uint8

// Methods (IBA 13.4.5, 15.2.2).
const (
	MethodGet          Method = 0x01
	MethodSet          Method = 0x02
	MethodReport       Method = 0x06
	MethodGetTable     Method = 0x12
	MethodGetResp      Method = 0x81
	MethodReportResp   Method = 0x86
	MethodGetTableResp Method = 0x92
)

// methodResponse is the R bit: set on every response method.
const methodResponse = 0x80

// IsResponse reports whether m is a response method (R bit set).
func (m Method) IsResponse() bool { return m&methodResponse != 0 }

func (m Method) String() string {
	switch m {
	case MethodGet:
		return "Get"
	case MethodSet:
		return "Set"
	case MethodReport:
		return "Report"
	case MethodGetTable:
		return "GetTable"
	case MethodGetResp:
		return "GetResp"
	case MethodReportResp:
		return "ReportResp"
	case MethodGetTableResp:
		return "GetTableResp"
	}
	return fmt.Sprintf("Method(%#02x)", uint8(m))
}

// AttrID is an attribute identifier; its meaning depends on the class.
type AttrID uint16

// Attributes (srpd.h, IBA 15.2.5, 16.3.3).
const (
	AttrClassPortInfo AttrID = 0x0001 // both classes
	AttrNotice        AttrID = 0x0002 // SA
	AttrInformInfo    AttrID = 0x0003 // SA

	AttrNodeRecord     AttrID = 0x0011 // SA
	AttrPortInfoRecord AttrID = 0x0012 // SA
	AttrPathRecord     AttrID = 0x0035 // SA

	AttrIOUnitInfo          AttrID = 0x0010 // DM
	AttrIOControllerProfile AttrID = 0x0011 // DM
	AttrServiceEntries      AttrID = 0x0012 // DM
)

// Name names the attribute within class c (the classes reuse numbers).
func (a AttrID) Name(c Class) string {
	switch a {
	case AttrClassPortInfo:
		return "ClassPortInfo"
	case AttrNotice:
		return "Notice"
	case AttrInformInfo:
		return "InformInfo"
	}
	switch {
	case c == ClassSA && a == AttrNodeRecord:
		return "NodeRecord"
	case c == ClassSA && a == AttrPortInfoRecord:
		return "PortInfoRecord"
	case c == ClassSA && a == AttrPathRecord:
		return "PathRecord"
	case c == ClassDM && a == AttrIOUnitInfo:
		return "IOUnitInfo"
	case c == ClassDM && a == AttrIOControllerProfile:
		return "IOControllerProfile"
	case c == ClassDM && a == AttrServiceEntries:
		return "ServiceEntries"
	}
	return fmt.Sprintf("Attr(%#04x)", uint16(a))
}

// Status is the MAD status field (IBA 13.4.7): bit 0 busy, bit 1 redirect,
// bits 2–4 an invalid-field code, bits 8–15 class specific.
type Status uint16

// Common status bits and invalid-field codes.
const (
	StatusBusy     Status = 1 << 0
	StatusRedirect Status = 1 << 1
	// invalidFieldShift/Mask locate the 3-bit invalid-field code.
	invalidFieldShift = 2
	invalidFieldMask  = 0x7

	// StatusBadVersion: class or base version not supported (code 1).
	StatusBadVersion Status = 1 << invalidFieldShift
	// StatusMethodUnsupported: method not supported (code 2).
	StatusMethodUnsupported Status = 2 << invalidFieldShift
	// StatusMethodAttrUnsupported: method/attribute combination not
	// supported (code 3); ib_srpt's DM_MAD_STATUS_UNSUP_METHOD_ATTR.
	StatusMethodAttrUnsupported Status = 3 << invalidFieldShift
	// StatusInvalidField: an attribute or modifier value is invalid
	// (code 7); ib_srpt's DM_MAD_STATUS_INVALID_FIELD.
	StatusInvalidField Status = 7 << invalidFieldShift

	classStatusMask Status = 0xff00
)

// SA class-specific status codes (IBA 15.2.1.2).
const (
	SAStatusNoResources          Status = 0x0100
	SAStatusReqInvalid           Status = 0x0200
	SAStatusNoRecords            Status = 0x0300
	SAStatusTooManyRecords       Status = 0x0400
	SAStatusInvalidGID           Status = 0x0500
	SAStatusInsufficientCompMask Status = 0x0600
	SAStatusDenied               Status = 0x0700
)

// DMStatusNoIOC is the DM class status "no IOC in this slot" (ib_dm_mad.h
// DM_MAD_STATUS_NO_IOC).
const DMStatusNoIOC Status = 0x0100

// InvalidField returns the 3-bit invalid-field code (0 = none).
func (s Status) InvalidField() uint8 { return uint8(s>>invalidFieldShift) & invalidFieldMask }

// ClassCode returns the class-specific bits (8–15).
func (s Status) ClassCode() Status { return s & classStatusMask }

func (s Status) String() string { return fmt.Sprintf("%#04x", uint16(s)) }

var invalidFieldNames = [...]string{
	1: "bad version",
	2: "method not supported",
	3: "method/attribute not supported",
	7: "invalid attribute or modifier",
}

var saStatusNames = map[Status]string{
	SAStatusNoResources:          "no resources",
	SAStatusReqInvalid:           "request invalid",
	SAStatusNoRecords:            "no records",
	SAStatusTooManyRecords:       "too many records",
	SAStatusInvalidGID:           "invalid GID",
	SAStatusInsufficientCompMask: "insufficient components",
	SAStatusDenied:               "request denied",
}

// Describe renders the status with the meaning of its bits in class c.
func (s Status) Describe(c Class) string {
	out := s.String()
	if s&StatusBusy != 0 {
		out += " busy"
	}
	if s&StatusRedirect != 0 {
		out += " redirect"
	}
	if code := s.InvalidField(); code != 0 {
		name := ""
		if int(code) < len(invalidFieldNames) {
			name = invalidFieldNames[code]
		}
		if name == "" {
			name = fmt.Sprintf("invalid field code %d", code)
		}
		out += " (" + name + ")"
	}
	if cc := s.ClassCode(); cc != 0 {
		switch {
		case c == ClassSA && saStatusNames[cc] != "":
			out += " (" + saStatusNames[cc] + ")"
		case c == ClassDM && cc == DMStatusNoIOC:
			out += " (no IOC)"
		default:
			out += fmt.Sprintf(" (class code %#02x)", uint8(cc>>8))
		}
	}
	return out
}

// Err returns nil for a zero status and a *StatusError otherwise.
func (s Status) Err(c Class, a AttrID) error {
	if s == 0 {
		return nil
	}
	return &StatusError{Class: c, Attr: a, Status: s}
}

// Header is the common MAD header (24 bytes).
type Header struct {
	BaseVersion   uint8
	Class         Class
	ClassVersion  uint8
	Method        Method
	Status        Status
	ClassSpecific uint16
	TID           uint64
	AttrID        AttrID
	AttrMod       uint32
}

// Encode writes h into b[:HeaderLen]; the reserved bytes 18–19 become 0.
func (h *Header) Encode(b []byte) error {
	if len(b) < HeaderLen {
		return encodeErr("header", "buffer", ErrShortBuffer)
	}
	b[0] = h.BaseVersion
	b[1] = byte(h.Class)
	b[2] = h.ClassVersion
	b[3] = byte(h.Method)
	be.PutUint16(b[4:], uint16(h.Status))
	be.PutUint16(b[6:], h.ClassSpecific)
	be.PutUint64(b[8:], h.TID)
	be.PutUint16(b[16:], uint16(h.AttrID))
	b[18], b[19] = 0, 0
	be.PutUint32(b[20:], h.AttrMod)
	return nil
}

// DecodeHeader decodes the common header. Only base version 1 exists.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, decodeErr("header", "buffer", len(b), ErrShortBuffer)
	}
	h := Header{
		BaseVersion:   b[0],
		Class:         Class(b[1]),
		ClassVersion:  b[2],
		Method:        Method(b[3]),
		Status:        Status(be.Uint16(b[4:])),
		ClassSpecific: be.Uint16(b[6:]),
		TID:           be.Uint64(b[8:]),
		AttrID:        AttrID(be.Uint16(b[16:])),
		AttrMod:       be.Uint32(b[20:]),
	}
	if h.BaseVersion != BaseVersion {
		return h, decodeErr("header", "base_version", 0, ErrBadHeader)
	}
	return h, nil
}

var be = binary.BigEndian

// putString copies s into the fixed field dst, NUL-padded (truncated if
// longer).
func putString(dst []byte, s string) {
	n := copy(dst, s)
	clear(dst[n:])
}

// cString returns the field up to its first NUL.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
