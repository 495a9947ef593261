package scsi

import "encoding/binary"

// Extent is one UNMAP block descriptor: blocks starting at LBA.
type Extent struct {
	LBA    uint64
	Blocks uint32
}

// UNMAP parameter list layout (SBC-4 5.31.2).
const (
	unmapHdrLen  = 8
	unmapDescLen = 16
	unmapBDOff   = 2 // UNMAP BLOCK DESCRIPTOR DATA LENGTH
	unmapLenSelf = 2
	// MaxUnmapDescriptors is the most descriptors one parameter list holds
	// (its length fields are 16 bits). VPD 0xB0 may allow fewer.
	MaxUnmapDescriptors = (0xFFFF - unmapHdrLen) / unmapDescLen
)

// AppendUnmapParams appends the UNMAP parameter list for ext (at most
// MaxUnmapDescriptors of them; the rest are ignored) and returns it; pass its
// length to Unmap. It allocates only if b lacks capacity.
func AppendUnmapParams(b []byte, ext []Extent) []byte {
	ext = ext[:min(len(ext), MaxUnmapDescriptors)]
	bd := len(ext) * unmapDescLen
	b = binary.BigEndian.AppendUint16(b, uint16(unmapHdrLen-unmapLenSelf+bd))
	b = binary.BigEndian.AppendUint16(b, uint16(bd))
	b = append(b, 0, 0, 0, 0)
	for _, e := range ext {
		b = binary.BigEndian.AppendUint64(b, e.LBA)
		b = binary.BigEndian.AppendUint32(b, e.Blocks)
		b = append(b, 0, 0, 0, 0)
	}
	return b
}

// ParseUnmapParams decodes an UNMAP parameter list (the target side). The
// block descriptor data length must be a multiple of 16 and fit in b.
func ParseUnmapParams(b []byte) ([]Extent, error) {
	const what = "UNMAP parameter list"
	if len(b) < unmapHdrLen {
		return nil, shortErr(what, unmapHdrLen)
	}
	bd := int(binary.BigEndian.Uint16(b[unmapBDOff:]))
	if bd%unmapDescLen != 0 {
		return nil, decodeErr(what+" block descriptor data length", unmapBDOff, ErrFormat)
	}
	if unmapHdrLen+bd > len(b) {
		return nil, shortErr(what, unmapHdrLen+bd)
	}
	ext := make([]Extent, bd/unmapDescLen)
	for i := range ext {
		d := b[unmapHdrLen+i*unmapDescLen:]
		ext[i] = Extent{LBA: binary.BigEndian.Uint64(d), Blocks: binary.BigEndian.Uint32(d[8:])}
	}
	return ext, nil
}
