package scsi

import (
	"bytes"
	"encoding/binary"
)

// PageCode names a VPD page (SPC-4 7.8, SBC-4 6.6).
type PageCode byte

// VPD pages this package decodes and encodes.
const (
	PageSupported      PageCode = 0x00
	PageUnitSerial     PageCode = 0x80
	PageDeviceID       PageCode = 0x83
	PageBlockLimits    PageCode = 0xB0
	PageBlockDevChars  PageCode = 0xB1
	PageLBProvisioning PageCode = 0xB2
	vpdHeaderLen                = 4
	vpdPageCodeOff              = 1
	vpdLenOff                   = 2
	maxVPDPageLen               = 0xFFFF
)

func (p PageCode) String() string {
	switch p {
	case PageSupported:
		return "supported VPD pages"
	case PageUnitSerial:
		return "unit serial number"
	case PageDeviceID:
		return "device identification"
	case PageBlockLimits:
		return "block limits"
	case PageBlockDevChars:
		return "block device characteristics"
	case PageLBProvisioning:
		return "logical block provisioning"
	}
	return "PageCode(0x" + hex2(byte(p)) + ")"
}

// vpdBody checks the 4-byte VPD header and returns the page body (the bytes
// the page length covers). variable pages must be complete (ErrTruncated with
// the length to ask for); fixed-layout pages may be cut and read as zeros.
func vpdBody(b []byte, want PageCode, mustBeWhole bool) ([]byte, error) {
	what := "VPD page 0x" + hex2(byte(want))
	if len(b) < vpdHeaderLen {
		return nil, shortErr(what, vpdHeaderLen)
	}
	if got := PageCode(b[vpdPageCodeOff]); got != want {
		return nil, decodeErr(what+" (got 0x"+hex2(byte(got))+")", vpdPageCodeOff, ErrPageCode)
	}
	n := vpdHeaderLen + int(binary.BigEndian.Uint16(b[vpdLenOff:]))
	if n > len(b) {
		if mustBeWhole {
			return nil, truncErr(what, n)
		}
		n = len(b)
	}
	return b[vpdHeaderLen:n], nil
}

// appendVPDHeader appends a header for a direct-access device (peripheral
// byte 0) with a zero length that finishVPD fills in.
func appendVPDHeader(b []byte, p PageCode) []byte {
	return append(b, byte(TypeDisk), byte(p), 0, 0)
}

func finishVPD(b []byte, start int) []byte {
	binary.BigEndian.PutUint16(b[start+vpdLenOff:], uint16(len(b)-start-vpdHeaderLen))
	return b
}

// ParseSupportedPages decodes VPD page 0x00, the list of supported pages.
func ParseSupportedPages(b []byte) ([]PageCode, error) {
	body, err := vpdBody(b, PageSupported, true)
	if err != nil {
		return nil, err
	}
	pages := make([]PageCode, len(body))
	for i, c := range body {
		pages[i] = PageCode(c)
	}
	return pages, nil
}

// AppendSupportedPages encodes VPD page 0x00. SPC-4 wants the list ascending;
// the caller supplies it so.
func AppendSupportedPages(b []byte, pages []PageCode) []byte {
	start := len(b)
	b = appendVPDHeader(b, PageSupported)
	for _, p := range pages[:min(len(pages), maxVPDPageLen)] {
		b = append(b, byte(p))
	}
	return finishVPD(b, start)
}

// ParseUnitSerial decodes VPD page 0x80. The serial is ASCII, right-padded
// with spaces by some targets; leading and trailing spaces and trailing NULs
// are removed.
func ParseUnitSerial(b []byte) (string, error) {
	body, err := vpdBody(b, PageUnitSerial, true)
	if err != nil {
		return "", err
	}
	return string(bytes.Trim(bytes.TrimRight(body, " \x00"), " ")), nil
}

// AppendUnitSerial encodes VPD page 0x80.
func AppendUnitSerial(b []byte, serial string) []byte {
	start := len(b)
	b = appendVPDHeader(b, PageUnitSerial)
	b = append(b, serial[:min(len(serial), maxVPDPageLen)]...)
	return finishVPD(b, start)
}

// BlockLimits is VPD page 0xB0 (SBC-4 6.6.4). Lengths count logical blocks;
// zero means "not reported".
type BlockLimits struct {
	WriteSameNonZero             bool   // WSNZ: WRITE SAME with 0 blocks not allowed
	MaxCompareAndWrite           uint8  // blocks
	OptimalTransferGranularity   uint16 // blocks
	MaxTransferLength            uint32 // blocks
	OptimalTransferLength        uint32 // blocks
	MaxPrefetchLength            uint32 // blocks
	MaxUnmapLBACount             uint32 // blocks per UNMAP command
	MaxUnmapDescriptorCount      uint32 // descriptors per UNMAP command
	OptimalUnmapGranularity      uint32 // blocks
	UnmapGranularityAlignValid   bool   // UGAVALID
	UnmapGranularityAlignment    uint32 // 31 bits
	MaxWriteSameLength           uint64 // blocks
	MaxAtomicTransferLength      uint32
	AtomicAlignment              uint32
	AtomicTransferLengthGranular uint32
}

// VPD 0xB0 offsets (from the start of the page, header included).
const (
	blWSNZOff     = 4
	blMaxCAWOff   = 5
	blOptGranOff  = 6
	blMaxXferOff  = 8
	blOptXferOff  = 12
	blPrefetchOff = 16
	blUnmapLBAOff = 20
	blUnmapDscOff = 24
	blUnmapGrOff  = 28
	blUGAOff      = 32
	blMaxWSOff    = 36
	blAtomicOff   = 44
	blAtomAlnOff  = 48
	blAtomGrOff   = 52
	blPageLen     = 0x3C // SBC-3/4 page length
	blWSNZ        = 0x01
	blUGAValid    = 0x80000000
)

// ParseBlockLimits decodes VPD page 0xB0. Older targets send a shorter page
// (length 0x0C); fields beyond the page read as zero.
func ParseBlockLimits(b []byte) (BlockLimits, error) {
	body, err := vpdBody(b, PageBlockLimits, false)
	if err != nil {
		return BlockLimits{}, err
	}
	// Work on a zero-padded copy so every field reads, present or not.
	var p [vpdHeaderLen + blPageLen]byte
	copy(p[vpdHeaderLen:], body)
	be := binary.BigEndian
	uga := be.Uint32(p[blUGAOff:])
	return BlockLimits{
		WriteSameNonZero:             p[blWSNZOff]&blWSNZ != 0,
		MaxCompareAndWrite:           p[blMaxCAWOff],
		OptimalTransferGranularity:   be.Uint16(p[blOptGranOff:]),
		MaxTransferLength:            be.Uint32(p[blMaxXferOff:]),
		OptimalTransferLength:        be.Uint32(p[blOptXferOff:]),
		MaxPrefetchLength:            be.Uint32(p[blPrefetchOff:]),
		MaxUnmapLBACount:             be.Uint32(p[blUnmapLBAOff:]),
		MaxUnmapDescriptorCount:      be.Uint32(p[blUnmapDscOff:]),
		OptimalUnmapGranularity:      be.Uint32(p[blUnmapGrOff:]),
		UnmapGranularityAlignValid:   uga&blUGAValid != 0,
		UnmapGranularityAlignment:    uga &^ blUGAValid,
		MaxWriteSameLength:           be.Uint64(p[blMaxWSOff:]),
		MaxAtomicTransferLength:      be.Uint32(p[blAtomicOff:]),
		AtomicAlignment:              be.Uint32(p[blAtomAlnOff:]),
		AtomicTransferLengthGranular: be.Uint32(p[blAtomGrOff:]),
	}, nil
}

// Append encodes l as a full-length VPD page 0xB0.
func (l *BlockLimits) Append(b []byte) []byte {
	var p [vpdHeaderLen + blPageLen]byte
	be := binary.BigEndian
	p[1] = byte(PageBlockLimits)
	be.PutUint16(p[vpdLenOff:], blPageLen)
	if l.WriteSameNonZero {
		p[blWSNZOff] = blWSNZ
	}
	p[blMaxCAWOff] = l.MaxCompareAndWrite
	be.PutUint16(p[blOptGranOff:], l.OptimalTransferGranularity)
	be.PutUint32(p[blMaxXferOff:], l.MaxTransferLength)
	be.PutUint32(p[blOptXferOff:], l.OptimalTransferLength)
	be.PutUint32(p[blPrefetchOff:], l.MaxPrefetchLength)
	be.PutUint32(p[blUnmapLBAOff:], l.MaxUnmapLBACount)
	be.PutUint32(p[blUnmapDscOff:], l.MaxUnmapDescriptorCount)
	be.PutUint32(p[blUnmapGrOff:], l.OptimalUnmapGranularity)
	uga := l.UnmapGranularityAlignment &^ blUGAValid
	if l.UnmapGranularityAlignValid {
		uga |= blUGAValid
	}
	be.PutUint32(p[blUGAOff:], uga)
	be.PutUint64(p[blMaxWSOff:], l.MaxWriteSameLength)
	be.PutUint32(p[blAtomicOff:], l.MaxAtomicTransferLength)
	be.PutUint32(p[blAtomAlnOff:], l.AtomicAlignment)
	be.PutUint32(p[blAtomGrOff:], l.AtomicTransferLengthGranular)
	return append(b, p[:]...)
}

// ProvisioningType is the PROVISIONING TYPE of VPD page 0xB2.
type ProvisioningType byte

// Provisioning types (SBC-4 table 264).
const (
	ProvisioningFull     ProvisioningType = 0
	ProvisioningResource ProvisioningType = 1 // resource provisioned
	ProvisioningThin     ProvisioningType = 2
	provTypeMask                          = 0x07
)

func (t ProvisioningType) String() string {
	switch t {
	case ProvisioningFull:
		return "full"
	case ProvisioningResource:
		return "resource"
	case ProvisioningThin:
		return "thin"
	}
	return "ProvisioningType(" + hex2(byte(t)) + ")"
}

// LBProvisioning is VPD page 0xB2 (SBC-4 6.6.6): which commands may
// deallocate blocks. The Linux sd driver picks UNMAP when LBPU is set, else
// WRITE SAME(16) with UNMAP when LBPWS is set.
type LBProvisioning struct {
	ThresholdExponent byte
	LBPU              bool // UNMAP supported
	LBPWS             bool // WRITE SAME(16) with UNMAP supported
	LBPWS10           bool // WRITE SAME(10) with UNMAP supported
	LBPRZ             byte // 3 bits: 0 = unmapped blocks read as anything, 1 = zeros
	ANCSup            bool // anchor supported
	DP                bool // a provisioning group descriptor follows
	MinimumPercentage byte // 5 bits
	Type              ProvisioningType
	ThresholdPercent  byte
	// GroupDescriptor is the designation descriptor that follows when DP
	// is set, raw (usually empty).
	GroupDescriptor []byte
}

// VPD 0xB2 layout.
const (
	lbpThreshExpOff = 4
	lbpFlagsOff     = 5
	lbpTypeOff      = 6
	lbpThreshPctOff = 7
	lbpMinLen       = 8 // header + 4
	lbpU            = 0x80
	lbpWS           = 0x40
	lbpWS10         = 0x20
	lbpRZMask       = 0x1C
	lbpRZShift      = 2
	lbpRZBits       = 0x07
	lbpANCSup       = 0x02
	lbpDP           = 0x01
	lbpMinPctShift  = 3
	lbpMinPctBits   = 0x1F
)

// ParseLBProvisioning decodes VPD page 0xB2; it needs the first 8 bytes.
func ParseLBProvisioning(b []byte) (LBProvisioning, error) {
	body, err := vpdBody(b, PageLBProvisioning, false)
	if err != nil {
		return LBProvisioning{}, err
	}
	if len(body) < lbpMinLen-vpdHeaderLen {
		return LBProvisioning{}, shortErr("VPD page 0xb2", lbpMinLen)
	}
	p := b[:vpdHeaderLen+len(body)]
	f := p[lbpFlagsOff]
	l := LBProvisioning{
		ThresholdExponent: p[lbpThreshExpOff],
		LBPU:              f&lbpU != 0,
		LBPWS:             f&lbpWS != 0,
		LBPWS10:           f&lbpWS10 != 0,
		LBPRZ:             f & lbpRZMask >> lbpRZShift,
		ANCSup:            f&lbpANCSup != 0,
		DP:                f&lbpDP != 0,
		MinimumPercentage: p[lbpTypeOff] >> lbpMinPctShift,
		Type:              ProvisioningType(p[lbpTypeOff] & provTypeMask),
		ThresholdPercent:  p[lbpThreshPctOff],
	}
	if l.DP && len(p) > lbpMinLen {
		l.GroupDescriptor = bytes.Clone(p[lbpMinLen:])
	}
	return l, nil
}

// Append encodes l as VPD page 0xB2.
func (l *LBProvisioning) Append(b []byte) []byte {
	start := len(b)
	b = appendVPDHeader(b, PageLBProvisioning)
	var f byte
	if l.LBPU {
		f |= lbpU
	}
	if l.LBPWS {
		f |= lbpWS
	}
	if l.LBPWS10 {
		f |= lbpWS10
	}
	f |= l.LBPRZ & lbpRZBits << lbpRZShift
	if l.ANCSup {
		f |= lbpANCSup
	}
	if l.DP {
		f |= lbpDP
	}
	b = append(b, l.ThresholdExponent, f,
		l.MinimumPercentage&lbpMinPctBits<<lbpMinPctShift|byte(l.Type)&provTypeMask, l.ThresholdPercent)
	if l.DP {
		b = append(b, l.GroupDescriptor...)
	}
	return finishVPD(b, start)
}
