package scsi

import "bytes"

// DeviceType is the PERIPHERAL DEVICE TYPE of INQUIRY data (SPC-4 table 146).
type DeviceType byte

// Device types this project meets; others print as numbers.
const (
	TypeDisk        DeviceType = 0x00 // direct access block device (SBC)
	TypeTape        DeviceType = 0x01
	TypeCDROM       DeviceType = 0x05
	TypeEnclosure   DeviceType = 0x0D
	TypeZonedBlock  DeviceType = 0x14 // host-managed zoned block device
	TypeWellKnownLU DeviceType = 0x1E
	TypeUnknown     DeviceType = 0x1F // unknown or no device type
	deviceTypeMask             = 0x1F
	qualifierShift             = 5
	qualifierMask              = 0x07
	inquiryStdLen              = 36
	inquiryAddlOff             = 4
	inquiryHdrLen              = 5 // additional length counts bytes after byte 4
	vendorOff                  = 8
	vendorLen                  = 8
	productOff                 = 16
	productLen                 = 16
	revisionOff                = 32
	revisionLen                = 4
)

func (t DeviceType) String() string {
	switch t {
	case TypeDisk:
		return "disk"
	case TypeTape:
		return "tape"
	case TypeCDROM:
		return "cd/dvd"
	case TypeEnclosure:
		return "enclosure"
	case TypeZonedBlock:
		return "zoned-block"
	case TypeWellKnownLU:
		return "well-known-lu"
	case TypeUnknown:
		return "unknown"
	}
	return "DeviceType(0x" + hex2(byte(t)) + ")"
}

// Peripheral qualifier values.
const (
	QualifierConnected    byte = 0 // the LU is there
	QualifierNotConnected byte = 1 // supported but not connected now
	QualifierNoLU         byte = 3 // no LU at this LUN (LIO answers 0x7F)
)

// InquiryData is the standard INQUIRY data (SPC-4 6.6.2), fields this project
// uses. Vendor, Product and Revision have trailing spaces and NULs removed.
type InquiryData struct {
	Qualifier  byte // peripheral qualifier, 3 bits
	DeviceType DeviceType
	Removable  bool
	Version    byte // 0x06 = SPC-4, 0x05 = SPC-3, 0x07 = SPC-5
	NormACA    bool
	HiSup      bool
	// ResponseFormat is 2 for every SPC device.
	ResponseFormat byte
	// TPGS: 0 no ALUA, 1 implicit, 2 explicit, 3 both.
	TPGS           byte
	ThirdPartyCopy bool
	Protect        bool
	MultiPort      bool
	CmdQue         bool
	Vendor         string
	Product        string
	Revision       string
}

// Bits of the standard INQUIRY data.
const (
	inqRMB      = 0x80 // byte 1
	inqNormACA  = 0x20 // byte 3
	inqHiSup    = 0x10
	inqRDFMask  = 0x0F
	inqTPGSMask = 0x30 // byte 5
	inqTPGSShr  = 4
	inq3PC      = 0x08
	inqProtect  = 0x01
	inqMultiP   = 0x10 // byte 6
	inqCmdQue   = 0x02 // byte 7
)

// ParseInquiry decodes standard INQUIRY data. It needs the first 5 bytes;
// like the kernel's scsi_probe_lun it accepts data shorter than 36 bytes
// (strings then come out short or empty) and ignores bytes past the
// additional length.
func ParseInquiry(b []byte) (InquiryData, error) {
	if len(b) < inquiryHdrLen {
		return InquiryData{}, shortErr("standard INQUIRY", inquiryHdrLen)
	}
	b = b[:min(len(b), inquiryHdrLen+int(b[inquiryAddlOff]))]
	var d InquiryData
	d.Qualifier = b[0] >> qualifierShift & qualifierMask
	d.DeviceType = DeviceType(b[0] & deviceTypeMask)
	d.Removable = b[1]&inqRMB != 0
	d.Version = b[2]
	d.NormACA = b[3]&inqNormACA != 0
	d.HiSup = b[3]&inqHiSup != 0
	d.ResponseFormat = b[3] & inqRDFMask
	if len(b) > 5 {
		d.TPGS = b[5] & inqTPGSMask >> inqTPGSShr
		d.ThirdPartyCopy = b[5]&inq3PC != 0
		d.Protect = b[5]&inqProtect != 0
	}
	if len(b) > 6 {
		d.MultiPort = b[6]&inqMultiP != 0
	}
	if len(b) > 7 {
		d.CmdQue = b[7]&inqCmdQue != 0
	}
	d.Vendor = field(b, vendorOff, vendorLen)
	d.Product = field(b, productOff, productLen)
	d.Revision = field(b, revisionOff, revisionLen)
	return d, nil
}

// field returns b[off:off+n] (as much as exists) without trailing spaces/NULs.
func field(b []byte, off, n int) string {
	if off >= len(b) {
		return ""
	}
	return string(bytes.TrimRight(b[off:min(len(b), off+n)], " \x00"))
}

// putField writes s left-aligned and space-padded (SPC-4 4.3.1), truncated to n.
func putField(dst []byte, s string) {
	n := copy(dst, s)
	for i := n; i < len(dst); i++ {
		dst[i] = ' '
	}
}

// Append encodes d as 36 bytes of standard INQUIRY data and appends them to b.
// Fields are written as given: a target sets ResponseFormat to 2.
func (d *InquiryData) Append(b []byte) []byte {
	var r [inquiryStdLen]byte
	r[0] = d.Qualifier&qualifierMask<<qualifierShift | byte(d.DeviceType)&deviceTypeMask
	if d.Removable {
		r[1] = inqRMB
	}
	r[2] = d.Version
	r[3] = d.ResponseFormat & inqRDFMask
	if d.NormACA {
		r[3] |= inqNormACA
	}
	if d.HiSup {
		r[3] |= inqHiSup
	}
	r[inquiryAddlOff] = inquiryStdLen - inquiryHdrLen
	r[5] = d.TPGS << inqTPGSShr & inqTPGSMask
	if d.ThirdPartyCopy {
		r[5] |= inq3PC
	}
	if d.Protect {
		r[5] |= inqProtect
	}
	if d.MultiPort {
		r[6] = inqMultiP
	}
	if d.CmdQue {
		r[7] = inqCmdQue
	}
	putField(r[vendorOff:vendorOff+vendorLen], d.Vendor)
	putField(r[productOff:productOff+productLen], d.Product)
	putField(r[revisionOff:revisionOff+revisionLen], d.Revision)
	return append(b, r[:]...)
}
