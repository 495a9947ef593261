package scsi

import (
	"bytes"
	"encoding/hex"
	"strings"
	"unicode/utf8"
)

// CodeSet is the CODE SET of a designation descriptor.
type CodeSet byte

// Code sets (SPC-4 table 595).
const (
	CodeSetBinary CodeSet = 1
	CodeSetASCII  CodeSet = 2
	CodeSetUTF8   CodeSet = 3
)

func (c CodeSet) String() string {
	switch c {
	case CodeSetBinary:
		return "binary"
	case CodeSetASCII:
		return "ascii"
	case CodeSetUTF8:
		return "utf8"
	}
	return "CodeSet(" + hex2(byte(c)) + ")"
}

// Association says what a designator names.
type Association byte

// Associations (SPC-4 table 596).
const (
	AssocLU           Association = 0 // the logical unit: what identifies an LU across paths
	AssocTargetPort   Association = 1 // the port the command came through
	AssocTargetDevice Association = 2 // the SCSI target device containing the LU
)

func (a Association) String() string {
	switch a {
	case AssocLU:
		return "lu"
	case AssocTargetPort:
		return "target-port"
	case AssocTargetDevice:
		return "target-device"
	}
	return "Association(" + hex2(byte(a)) + ")"
}

// DesignatorType is the DESIGNATOR TYPE of a designation descriptor.
type DesignatorType byte

// Designator types (SPC-4 table 597). The numbers are also the WWID prefix
// characters scsi_id uses ("3" NAA, "2" EUI-64, "1" T10 vendor ID).
const (
	DesigVendorSpecific     DesignatorType = 0x0
	DesigT10Vendor          DesignatorType = 0x1
	DesigEUI64              DesignatorType = 0x2
	DesigNAA                DesignatorType = 0x3
	DesigRelativeTargetPort DesignatorType = 0x4
	DesigTargetPortGroup    DesignatorType = 0x5
	DesigLUGroup            DesignatorType = 0x6
	DesigMD5LUID            DesignatorType = 0x7
	DesigSCSIName           DesignatorType = 0x8
	DesigProtocolPort       DesignatorType = 0x9
	DesigUUID               DesignatorType = 0xA
)

func (t DesignatorType) String() string {
	switch t {
	case DesigVendorSpecific:
		return "vendor-specific"
	case DesigT10Vendor:
		return "t10-vendor-id"
	case DesigEUI64:
		return "eui-64"
	case DesigNAA:
		return "naa"
	case DesigRelativeTargetPort:
		return "relative-target-port"
	case DesigTargetPortGroup:
		return "target-port-group"
	case DesigLUGroup:
		return "lu-group"
	case DesigMD5LUID:
		return "md5-lu-id"
	case DesigSCSIName:
		return "scsi-name-string"
	case DesigProtocolPort:
		return "protocol-specific-port"
	case DesigUUID:
		return "uuid"
	}
	return "DesignatorType(" + hex2(byte(t)) + ")"
}

// NAA formats (the high nibble of an NAA designator).
const (
	NAAIEEEExtended           byte = 2
	NAALocallyAssigned        byte = 3
	NAAIEEERegistered         byte = 5
	NAAIEEERegisteredExt      byte = 6 // what LIO emits: 6 001405 <serial nibbles>
	naaShortLen                    = 8
	naaLongLen                     = 16
	eui64Len                       = 8
	eui64Len12                     = 12
	eui64Len16                     = 16
	t10VendorLen                   = 8
	scsiNameAlign                  = 4
	designatorHdrLen               = 4
	desigProtoShift                = 4
	desigCodeSetMask               = 0x0F
	desigPIV                       = 0x80
	desigAssocShift                = 4
	desigAssocMask                 = 0x03
	desigTypeMask                  = 0x0F
	maxDesignatorLen               = 0xFF
	naaNibbleShift                 = 4
	wwidPrefixSCSIName             = '8'
	wwidPrefixHexDigits            = "0123456789abcdef"
	udevAllowedPunctuation         = "#+-.:=@_"
	udevLeadingWhitespace          = " \t\n\r"
	udevWhitespaceReplacement      = '_'
	udevBadCharReplacement         = '_'
	udevHexEscape                  = `\x`
	naaAny                    byte = 0xFF
)

// Designator is one designation descriptor of VPD page 0x83.
type Designator struct {
	ProtocolID  byte // 4 bits; meaningful only with PIV
	CodeSet     CodeSet
	PIV         bool
	Association Association
	Type        DesignatorType
	ID          []byte
}

// NAA returns the NAA format nibble of an NAA designator (0 if empty).
func (d *Designator) NAA() byte {
	if len(d.ID) == 0 {
		return 0
	}
	return d.ID[0] >> naaNibbleShift
}

// Check validates the designator's length and code set against its type:
// NAA 2/3/5 are 8 bytes and NAA 6 is 16, binary; EUI-64 is 8, 12 or 16
// bytes, binary; a T10 vendor ID starts with an 8-byte vendor; a SCSI name
// string is UTF-8, NUL-terminated, padded to a multiple of 4. Other types
// are not checked. WWID does not require it (scsi_id does not check either).
func (d *Designator) Check() error {
	bad := func() error { return decodeErr("designator "+d.Type.String(), designatorHdrLen, ErrFormat) }
	switch d.Type {
	case DesigNAA:
		if d.CodeSet != CodeSetBinary {
			return bad()
		}
		switch d.NAA() {
		case NAAIEEEExtended, NAALocallyAssigned, NAAIEEERegistered:
			if len(d.ID) != naaShortLen {
				return bad()
			}
		case NAAIEEERegisteredExt:
			if len(d.ID) != naaLongLen {
				return bad()
			}
		default:
			return bad()
		}
	case DesigEUI64:
		if d.CodeSet != CodeSetBinary {
			return bad()
		}
		switch len(d.ID) {
		case eui64Len, eui64Len12, eui64Len16:
		default:
			return bad()
		}
	case DesigT10Vendor:
		if len(d.ID) < t10VendorLen {
			return bad()
		}
	case DesigSCSIName:
		if d.CodeSet != CodeSetUTF8 || len(d.ID)%scsiNameAlign != 0 || bytes.IndexByte(d.ID, 0) < 0 {
			return bad()
		}
	}
	return nil
}

// String formats the designator like the kernel's sysfs "wwid" attribute
// (naa.<hex>, eui.<hex>, t10.<text>, the SCSI name itself), other types as
// <type>.<hex>.
func (d Designator) String() string {
	switch {
	case d.Type == DesigNAA && d.CodeSet == CodeSetBinary:
		return "naa." + hex.EncodeToString(d.ID)
	case d.Type == DesigEUI64 && d.CodeSet == CodeSetBinary:
		return "eui." + hex.EncodeToString(d.ID)
	case d.Type == DesigT10Vendor:
		return "t10." + cString(d.ID)
	case d.Type == DesigSCSIName:
		return cString(d.ID)
	}
	return d.Type.String() + "." + hex.EncodeToString(d.ID)
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// DeviceID is VPD page 0x83, device identification.
type DeviceID struct {
	Designators []Designator
}

// ParseDeviceID decodes VPD page 0x83. The page must be complete
// (ErrTruncated names the allocation length to retry with) and every
// descriptor must fit inside it (ErrFormat otherwise).
func ParseDeviceID(b []byte) (DeviceID, error) {
	body, err := vpdBody(b, PageDeviceID, true)
	if err != nil {
		return DeviceID{}, err
	}
	body = bytes.Clone(body) // one copy; IDs alias it
	var d DeviceID
	for off := 0; off < len(body); {
		if off+designatorHdrLen > len(body) {
			return DeviceID{}, decodeErr("VPD page 0x83 designator header", vpdHeaderLen+off, ErrFormat)
		}
		h := body[off : off+designatorHdrLen]
		end := off + designatorHdrLen + int(h[3])
		if end > len(body) {
			return DeviceID{}, decodeErr("VPD page 0x83 designator", vpdHeaderLen+off, ErrFormat)
		}
		d.Designators = append(d.Designators, Designator{
			ProtocolID:  h[0] >> desigProtoShift,
			CodeSet:     CodeSet(h[0] & desigCodeSetMask),
			PIV:         h[1]&desigPIV != 0,
			Association: Association(h[1] >> desigAssocShift & desigAssocMask),
			Type:        DesignatorType(h[1] & desigTypeMask),
			ID:          body[off+designatorHdrLen : end : end],
		})
		off = end
	}
	return d, nil
}

// Append encodes d as VPD page 0x83 (IDs longer than 255 bytes are cut).
func (d *DeviceID) Append(b []byte) []byte {
	start := len(b)
	b = appendVPDHeader(b, PageDeviceID)
	for i := range d.Designators {
		x := &d.Designators[i]
		id := x.ID[:min(len(x.ID), maxDesignatorLen)]
		h1 := byte(x.Association)&desigAssocMask<<desigAssocShift | byte(x.Type)&desigTypeMask
		if x.PIV {
			h1 |= desigPIV
		}
		b = append(b, x.ProtocolID<<desigProtoShift|byte(x.CodeSet)&desigCodeSetMask, h1, 0, byte(len(id)))
		b = append(b, id...)
	}
	return finishVPD(b, start)
}

// WWID returns the LU's world-wide identifier in the form multipath-tools
// uses: the ID_SERIAL that udev's scsi_id --export --whitelisted prints.
// scsi_id (systemd src/udev/scsi_id/scsi_serial.c, id_search_list and
// check_fill_0x83_id) takes the first match, in this order, among
// designators associated with the LU, each with binary before ASCII code
// set: NAA 6 (IEEE registered extended), NAA 5, any other NAA, EUI-64, T10
// vendor ID. The result is the designator type as one hex digit ("3" NAA,
// "2" EUI-64, "1" T10 vendor ID) followed by the identifier: binary ones as
// lower-case hex, ASCII ones as text. scsi_id.c then passes the text
// through udev's util_replace_whitespace (trim, runs of white space → one
// '_') and util_replace_chars (anything but alphanumerics, "#+-.:=@_",
// "\x" escapes and multi-byte UTF-8 → '_'); so do we.
//
// Example: LIO's NAA 6 designator 60 01 40 5e 3b 0a ... gives
// "36001405e3b0a...".
//
// Differences from scsi_id, both for LUs it would not name at all: empty
// identifiers, and ASCII ones blank up to their first NUL, are skipped; and
// as a last resort a SCSI name string designator gives "8" + the name
// (scsi_id would fall back to page 0x80 with vendor and model, which is not
// unique across paths of every target). The
// pre-SPC-3 page 0x83 layout of old EMC arrays is not recognised. It returns
// ErrNoDesignator when nothing qualifies.
func (d *DeviceID) WWID() (string, error) {
	type rule struct {
		typ DesignatorType
		naa byte // naaAny: any NAA format
		cs  CodeSet
	}
	rules := [...]rule{
		{DesigNAA, NAAIEEERegisteredExt, CodeSetBinary},
		{DesigNAA, NAAIEEERegisteredExt, CodeSetASCII},
		{DesigNAA, NAAIEEERegistered, CodeSetBinary},
		{DesigNAA, NAAIEEERegistered, CodeSetASCII},
		{DesigNAA, naaAny, CodeSetBinary},
		{DesigNAA, naaAny, CodeSetASCII},
		{DesigEUI64, naaAny, CodeSetBinary},
		{DesigEUI64, naaAny, CodeSetASCII},
		{DesigT10Vendor, naaAny, CodeSetBinary},
		{DesigT10Vendor, naaAny, CodeSetASCII},
		{DesigSCSIName, naaAny, CodeSetUTF8},
	}
	for _, r := range rules {
		for i := range d.Designators {
			x := &d.Designators[i]
			if x.Association != AssocLU || x.Type != r.typ || x.CodeSet != r.cs || len(x.ID) == 0 {
				continue
			}
			// scsi_id compares the nibble whatever the code set is.
			if r.naa != naaAny && x.NAA() != r.naa {
				continue
			}
			prefix := wwidPrefixHexDigits[r.typ]
			if r.typ == DesigSCSIName {
				prefix = wwidPrefixSCSIName
			}
			if r.cs == CodeSetBinary {
				return string(prefix) + hex.EncodeToString(x.ID), nil
			}
			// An identifier that is blank once cut at its NUL would leave
			// the bare prefix ("1"): the same WWID for every such LU.
			id := cString(x.ID)
			if blank(id) {
				continue
			}
			return udevSanitize(string(prefix) + id), nil
		}
	}
	return "", decodeErr("VPD page 0x83", vpdHeaderLen, ErrNoDesignator)
}

// udevSanitize applies util_replace_whitespace then util_replace_chars(s,
// NULL), as scsi_id does before printing ID_SERIAL.
func udevSanitize(s string) string {
	s = strings.TrimLeft(s, udevLeadingWhitespace)
	var out strings.Builder
	pendingSpace := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isCSpace(c) {
			pendingSpace = true
			continue
		}
		if pendingSpace {
			out.WriteByte(udevWhitespaceReplacement)
			pendingSpace = false
		}
		out.WriteByte(c)
	}
	s = out.String()
	out.Reset()
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case isAlnum(c) || strings.IndexByte(udevAllowedPunctuation, c) >= 0:
			out.WriteByte(c)
			i++
		case strings.HasPrefix(s[i:], udevHexEscape):
			out.WriteString(udevHexEscape)
			i += len(udevHexEscape)
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError && n > 1 {
				out.WriteString(s[i : i+n])
				i += n
				continue
			}
			out.WriteByte(udevBadCharReplacement)
			i++
		}
	}
	return out.String()
}

// isCSpace is C's isspace in the C locale.
// blank reports whether s is empty or only white space.
func blank(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isCSpace(s[i]) {
			return false
		}
	}
	return true
}

func isCSpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r')
}

func isAlnum(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}
