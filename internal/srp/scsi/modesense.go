package scsi

import (
	"bytes"
	"encoding/binary"
)

// Mode page codes this package interprets.
const (
	// ModePageCaching is the caching mode page (SBC-4 6.5.5): WCE/RCD.
	ModePageCaching byte = 0x08
	// ModePageAll asks MODE SENSE for every page.
	ModePageAll byte = 0x3F
)

// MODE SENSE(10) header layout (SPC-4 7.5.5).
const (
	ms10HdrLen      = 8
	ms10LenFieldLen = 2 // mode data length excludes itself
	ms10MediumOff   = 2
	ms10DevSpecOff  = 3
	ms10LongLBAOff  = 4
	ms10BDLenOff    = 6
	msWP            = 0x80 // device-specific parameter, SBC
	msDPOFUA        = 0x10
	msLongLBA       = 0x01
	mpPS            = 0x80
	mpSPF           = 0x40
	mpCodeMask      = 0x3F
	mpHdrLen        = 2 // page_0 format: code, length
	mpSubHdrLen     = 4 // sub_page format: code, subpage, 16-bit length
	maxPage0Len     = 0xFF
	maxSubpageLen   = 0xFFFF
)

// ModePage is one mode page, raw.
type ModePage struct {
	Code    byte // 6 bits
	Subpage byte // with SPF
	SPF     bool // sub_page format (16-bit length)
	PS      bool // parameters saveable
	Data    []byte
}

// ModeParams is MODE SENSE(10) parameter data.
type ModeParams struct {
	MediumType       byte
	WriteProtect     bool // WP
	DPOFUA           bool // the LU honours DPO and FUA: the initiator may set FUA
	LongLBA          bool
	BlockDescriptors []byte // raw
	Pages            []ModePage
}

// ParseModeSense10 decodes MODE SENSE(10) parameter data. Data cut by the
// allocation length is ErrTruncated (Need = the full length); a page or
// block descriptor list running past the data is ErrFormat.
func ParseModeSense10(b []byte) (ModeParams, error) {
	const what = "MODE SENSE(10) data"
	if len(b) < ms10HdrLen {
		return ModeParams{}, shortErr(what, ms10HdrLen)
	}
	n := ms10LenFieldLen + int(binary.BigEndian.Uint16(b))
	if n > len(b) {
		return ModeParams{}, truncErr(what, n)
	}
	if n < ms10HdrLen {
		return ModeParams{}, decodeErr(what+" mode data length", 0, ErrFormat)
	}
	b = bytes.Clone(b[:n])
	m := ModeParams{
		MediumType:   b[ms10MediumOff],
		WriteProtect: b[ms10DevSpecOff]&msWP != 0,
		DPOFUA:       b[ms10DevSpecOff]&msDPOFUA != 0,
		LongLBA:      b[ms10LongLBAOff]&msLongLBA != 0,
	}
	off := ms10HdrLen + int(binary.BigEndian.Uint16(b[ms10BDLenOff:]))
	if off > n {
		return ModeParams{}, decodeErr(what+" block descriptor length", ms10BDLenOff, ErrFormat)
	}
	if off > ms10HdrLen {
		m.BlockDescriptors = b[ms10HdrLen:off:off]
	}
	for off < n {
		p := ModePage{Code: b[off] & mpCodeMask, PS: b[off]&mpPS != 0, SPF: b[off]&mpSPF != 0}
		var start int
		if p.SPF {
			if off+mpSubHdrLen > n {
				return ModeParams{}, decodeErr(what+" subpage header", off, ErrFormat)
			}
			p.Subpage = b[off+1]
			start = off + mpSubHdrLen
			off = start + int(binary.BigEndian.Uint16(b[off+2:]))
		} else {
			if off+mpHdrLen > n {
				return ModeParams{}, decodeErr(what+" page header", off, ErrFormat)
			}
			start = off + mpHdrLen
			off = start + int(b[off+1])
		}
		if off > n {
			return ModeParams{}, decodeErr(what+" page 0x"+hex2(p.Code), start, ErrFormat)
		}
		p.Data = b[start:off:off]
		m.Pages = append(m.Pages, p)
	}
	return m, nil
}

// Page returns the first page with this code and subpage.
func (m *ModeParams) Page(code, subpage byte) (ModePage, bool) {
	for _, p := range m.Pages {
		if p.Code == code && p.Subpage == subpage {
			return p, true
		}
	}
	return ModePage{}, false
}

// Append encodes m as MODE SENSE(10) parameter data. Pages longer than their
// length field allows are cut.
func (m *ModeParams) Append(b []byte) []byte {
	start := len(b)
	var dev byte
	if m.WriteProtect {
		dev |= msWP
	}
	if m.DPOFUA {
		dev |= msDPOFUA
	}
	var long byte
	if m.LongLBA {
		long = msLongLBA
	}
	b = append(b, 0, 0, m.MediumType, dev, long, 0)
	bd := m.BlockDescriptors[:min(len(m.BlockDescriptors), maxSubpageLen)]
	b = binary.BigEndian.AppendUint16(b, uint16(len(bd)))
	b = append(b, bd...)
	for _, p := range m.Pages {
		b = p.append(b)
	}
	binary.BigEndian.PutUint16(b[start:], uint16(len(b)-start-ms10LenFieldLen))
	return b
}

func (p *ModePage) append(b []byte) []byte {
	c := p.Code & mpCodeMask
	if p.PS {
		c |= mpPS
	}
	if p.SPF {
		d := p.Data[:min(len(p.Data), maxSubpageLen)]
		b = append(b, c|mpSPF, p.Subpage)
		b = binary.BigEndian.AppendUint16(b, uint16(len(d)))
		return append(b, d...)
	}
	d := p.Data[:min(len(p.Data), maxPage0Len)]
	b = append(b, c, byte(len(d)))
	return append(b, d...)
}

// Caching is the part of the caching mode page this project uses.
type Caching struct {
	WCE bool // write cache enabled: writes need SYNCHRONIZE CACHE or FUA to be durable
	RCD bool // read cache disabled
}

// Caching page layout.
const (
	cachingPageLen = 0x12 // SBC-4: page length of the caching page
	cachingWCE     = 0x04 // byte 2 of the page = Data[0]
	cachingRCD     = 0x01
)

// Caching finds the caching page (0x08) and decodes WCE and RCD. A missing
// page is ErrPageCode; an empty one ErrShort.
func (m *ModeParams) Caching() (Caching, error) {
	p, ok := m.Page(ModePageCaching, 0)
	if !ok {
		return Caching{}, decodeErr("MODE SENSE caching page", 0, ErrPageCode)
	}
	if len(p.Data) < 1 {
		return Caching{}, shortErr("MODE SENSE caching page", mpHdrLen+1)
	}
	return Caching{WCE: p.Data[0]&cachingWCE != 0, RCD: p.Data[0]&cachingRCD != 0}, nil
}

// Page returns c as a full-length caching mode page (other fields zero).
func (c Caching) Page() ModePage {
	d := make([]byte, cachingPageLen)
	if c.WCE {
		d[0] |= cachingWCE
	}
	if c.RCD {
		d[0] |= cachingRCD
	}
	return ModePage{Code: ModePageCaching, Data: d}
}
