package scsi

import (
	"encoding/binary"
	"math"
)

// ReadCapacity16Len is the allocation length to use with ReadCapacity16: the
// full parameter data of SBC-4 table 123.
const ReadCapacity16Len = 32

// READ CAPACITY(16) parameter data layout.
const (
	rc16LastLBAOff  = 0
	rc16BlockLenOff = 8
	rc16ProtOff     = 12
	rc16ExpOff      = 13
	rc16AlignOff    = 14
	rc16MinLen      = 16 // through the lowest aligned LBA
	rc16ProtEn      = 0x01
	rc16PTypeMask   = 0x0E
	rc16PTypeShift  = 1
	rc16PIExpShift  = 4
	rc16LBPPEMask   = 0x0F
	rc16LBPME       = 0x8000
	rc16LBPRZ       = 0x4000
	rc16AlignMask   = 0x3FFF
	maxAlignedLBA   = rc16AlignMask
)

// Capacity is the READ CAPACITY(16) parameter data.
type Capacity struct {
	// Blocks is the number of logical blocks: the returned last LBA + 1.
	Blocks    uint64
	BlockSize uint32 // logical block length in bytes
	// ProtectionEnabled (PROT_EN) and ProtectionType (P_TYPE, 3 bits).
	ProtectionEnabled bool
	ProtectionType    byte
	PIExponent        byte // P_I_EXPONENT, 4 bits
	// PhysicalBlockExponent: 2^n logical blocks per physical block (4 bits).
	PhysicalBlockExponent byte
	LBPME                 bool   // logical block provisioning management enabled (thin)
	LBPRZ                 bool   // unmapped blocks read as zeros
	LowestAlignedLBA      uint16 // 14 bits
}

// Bytes returns the capacity in bytes, or false if it overflows 64 bits.
func (c *Capacity) Bytes() (uint64, bool) {
	if c.BlockSize != 0 && c.Blocks > math.MaxUint64/uint64(c.BlockSize) {
		return 0, false
	}
	return c.Blocks * uint64(c.BlockSize), true
}

// PhysicalBlockSize returns the physical block size in bytes (0 when the
// exponent would overflow 32 bits).
func (c *Capacity) PhysicalBlockSize() uint32 {
	v := uint64(c.BlockSize) << c.PhysicalBlockExponent
	if v > math.MaxUint32 {
		return 0
	}
	return uint32(v)
}

// ParseReadCapacity16 decodes READ CAPACITY(16) data. It needs 16 bytes; a
// last LBA of 2^64-1 (a block count that does not fit) is ErrFormat.
func ParseReadCapacity16(b []byte) (Capacity, error) {
	if len(b) < rc16MinLen {
		return Capacity{}, shortErr("READ CAPACITY(16) data", rc16MinLen)
	}
	be := binary.BigEndian
	last := be.Uint64(b[rc16LastLBAOff:])
	if last == math.MaxUint64 {
		return Capacity{}, decodeErr("READ CAPACITY(16) last LBA", rc16LastLBAOff, ErrFormat)
	}
	al := be.Uint16(b[rc16AlignOff:])
	return Capacity{
		Blocks:                last + 1,
		BlockSize:             be.Uint32(b[rc16BlockLenOff:]),
		ProtectionEnabled:     b[rc16ProtOff]&rc16ProtEn != 0,
		ProtectionType:        b[rc16ProtOff] & rc16PTypeMask >> rc16PTypeShift,
		PIExponent:            b[rc16ExpOff] >> rc16PIExpShift,
		PhysicalBlockExponent: b[rc16ExpOff] & rc16LBPPEMask,
		LBPME:                 al&rc16LBPME != 0,
		LBPRZ:                 al&rc16LBPRZ != 0,
		LowestAlignedLBA:      al & rc16AlignMask,
	}, nil
}

// Append encodes c as 32 bytes of READ CAPACITY(16) data. Blocks must be at
// least 1 (an LU of zero blocks has no last LBA); 0 is written as last LBA 0.
func (c *Capacity) Append(b []byte) []byte {
	var r [ReadCapacity16Len]byte
	be := binary.BigEndian
	var last uint64
	if c.Blocks > 0 {
		last = c.Blocks - 1
	}
	be.PutUint64(r[rc16LastLBAOff:], last)
	be.PutUint32(r[rc16BlockLenOff:], c.BlockSize)
	r[rc16ProtOff] = c.ProtectionType << rc16PTypeShift & rc16PTypeMask
	if c.ProtectionEnabled {
		r[rc16ProtOff] |= rc16ProtEn
	}
	r[rc16ExpOff] = c.PIExponent<<rc16PIExpShift | c.PhysicalBlockExponent&rc16LBPPEMask
	al := c.LowestAlignedLBA & maxAlignedLBA
	if c.LBPME {
		al |= rc16LBPME
	}
	if c.LBPRZ {
		al |= rc16LBPRZ
	}
	be.PutUint16(r[rc16AlignOff:], al)
	return append(b, r[:]...)
}
