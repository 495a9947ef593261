package mad

// RMPP header values (IBA 13.6.2): srp_daemon asks for GetTable responses
// with rmpp_version 1, type DATA; a reassembled response carries the
// payload length of the whole transfer in its first segment.
const (
	RMPPVersion  = 1
	RMPPTypeData = 1
	// RMPPFlagActive, First and Last: an RMPP transfer, its first and last
	// segment (a reassembled buffer has all three).
	RMPPFlagActive = 1 << 0
	RMPPFlagFirst  = 1 << 1
	RMPPFlagLast   = 1 << 2
)

// SAHeader is the part of an SA MAD between the common header and the
// data: the RMPP header (offset 24) and the SA header (offset 36).
type SAHeader struct {
	RMPPVersion uint8
	RMPPType    uint8
	RMPPFlags   uint8 // RRespTime (bits 7–3) | Flags (bits 2–0)
	RMPPStatus  uint8
	SegNum      uint32
	PayLen      uint32 // PayloadLength (first/last segment) or NewWindowLast
	SMKey       uint64
	// AttrOffset is the distance between records in 8-byte words
	// (GetTableResp); requests leave it 0, as srp_daemon does.
	AttrOffset uint16
	CompMask   uint64
}

// SAMessage is an SA MAD: one 256-byte datagram, or an RMPP response as
// the MAD layer hands it over after reassembly (header once, then the
// records of every segment).
type SAMessage struct {
	Header
	SA SAHeader
	// Data is the attribute data from offset 56. A decoded message's Data
	// aliases the input buffer.
	Data []byte
}

// Len is the encoded size: at least Size, more when Data exceeds one MAD.
func (m *SAMessage) Len() int { return max(Size, SADataOffset+len(m.Data)) }

// Encode writes m into b, which must hold Len() bytes; the unused tail of
// the data area and every reserved byte become 0.
func (m *SAMessage) Encode(b []byte) error {
	n := m.Len()
	if len(b) < n {
		return encodeErr("SA MAD", "buffer", ErrShortBuffer)
	}
	if err := m.Header.Encode(b); err != nil {
		return err
	}
	s := &m.SA
	b[24], b[25], b[26], b[27] = s.RMPPVersion, s.RMPPType, s.RMPPFlags, s.RMPPStatus
	be.PutUint32(b[28:], s.SegNum)
	be.PutUint32(b[32:], s.PayLen)
	be.PutUint64(b[36:], s.SMKey)
	be.PutUint16(b[44:], s.AttrOffset)
	b[46], b[47] = 0, 0
	be.PutUint64(b[48:], s.CompMask)
	c := copy(b[SADataOffset:n], m.Data)
	clear(b[SADataOffset+c : n])
	return nil
}

// Marshal encodes m into a new buffer of Len() bytes.
func (m *SAMessage) Marshal() []byte {
	b := make([]byte, m.Len())
	_ = m.Encode(b) // cannot fail: b has Len() bytes
	return b
}

// DecodeSA decodes an SA MAD. It checks the base version and the class;
// the status is left to the caller (Header.Status.Err), because "no
// records" is an answer, not a failure, for some queries.
func DecodeSA(b []byte) (SAMessage, error) {
	h, err := DecodeHeader(b)
	if err != nil {
		return SAMessage{}, err
	}
	if h.Class != ClassSA {
		return SAMessage{}, decodeErr("SA MAD", "mgmt_class", 1, ErrBadHeader)
	}
	if len(b) < SADataOffset {
		return SAMessage{}, decodeErr("SA MAD", "buffer", len(b), ErrShortBuffer)
	}
	m := SAMessage{Header: h, SA: SAHeader{
		RMPPVersion: b[24],
		RMPPType:    b[25],
		RMPPFlags:   b[26],
		RMPPStatus:  b[27],
		SegNum:      be.Uint32(b[28:]),
		PayLen:      be.Uint32(b[32:]),
		SMKey:       be.Uint64(b[36:]),
		AttrOffset:  be.Uint16(b[44:]),
		CompMask:    be.Uint64(b[48:]),
	}, Data: b[SADataOffset:]}
	return m, nil
}

// Records splits the data of a Get/GetTable response into its records:
// AttrOffset×8 bytes apart, each at least minLen long. The number of
// records comes from the RMPP payload length when the response was an RMPP
// transfer, otherwise from the data length. A GetResp without AttrOffset
// holds one record.
func (m *SAMessage) Records(minLen int) ([][]byte, error) {
	data := m.Data
	if m.SA.RMPPVersion != 0 && m.SA.RMPPFlags&RMPPFlagActive != 0 && m.SA.PayLen != 0 {
		n := int(m.SA.PayLen) - saHeaderAfterRMPP
		if n < 0 || n > len(data) {
			return nil, decodeErr("SA MAD", "paylen", 32, ErrBadValue)
		}
		data = data[:n]
	}
	stride := int(m.SA.AttrOffset) * 8
	if stride == 0 {
		if m.Method == MethodGetTableResp {
			if len(data) == 0 {
				return nil, nil
			}
			return nil, decodeErr("SA MAD", "attr_offset", 44, ErrBadValue)
		}
		stride = len(data)
	}
	if stride < minLen {
		return nil, decodeErr("SA MAD", "attr_offset", 44, ErrBadValue)
	}
	var out [][]byte
	for off := 0; off+stride <= len(data); off += stride {
		out = append(out, data[off:off+stride])
	}
	return out, nil
}

// DMMessage is a device-management MAD.
type DMMessage struct {
	Header
	// Data is the 192-byte data area from offset 64 (aliases the input
	// when decoded).
	Data []byte
}

// Encode writes m into b[:Size]; reserved bytes and the unused tail of the
// data area become 0.
func (m *DMMessage) Encode(b []byte) error {
	if len(b) < Size {
		return encodeErr("DM MAD", "buffer", ErrShortBuffer)
	}
	if len(m.Data) > DMDataLen {
		return encodeErr("DM MAD", "data", ErrBadValue)
	}
	if err := m.Header.Encode(b); err != nil {
		return err
	}
	clear(b[HeaderLen:DMDataOffset])
	c := copy(b[DMDataOffset:Size], m.Data)
	clear(b[DMDataOffset+c : Size])
	return nil
}

// Marshal encodes m into a new Size-byte buffer.
func (m *DMMessage) Marshal() ([]byte, error) {
	b := make([]byte, Size)
	if err := m.Encode(b); err != nil {
		return nil, err
	}
	return b, nil
}

// DecodeDM decodes a device-management MAD (status left to the caller).
func DecodeDM(b []byte) (DMMessage, error) {
	h, err := DecodeHeader(b)
	if err != nil {
		return DMMessage{}, err
	}
	if h.Class != ClassDM {
		return DMMessage{}, decodeErr("DM MAD", "mgmt_class", 1, ErrBadHeader)
	}
	if len(b) < Size {
		return DMMessage{}, decodeErr("DM MAD", "buffer", len(b), ErrShortBuffer)
	}
	return DMMessage{Header: h, Data: b[DMDataOffset:Size]}, nil
}

// SARequest builds a 256-byte SA request carrying rec (nil for none),
// with class version 2. GetTable requests ask for RMPP, as srp_daemon does.
func SARequest(method Method, attr AttrID, attrMod uint32, tid uint64, compMask uint64, rec Record) ([]byte, error) {
	m := SAMessage{
		Header: Header{BaseVersion: BaseVersion, Class: ClassSA, ClassVersion: SAClassVersion,
			Method: method, TID: tid, AttrID: attr, AttrMod: attrMod},
		SA: SAHeader{CompMask: compMask},
	}
	if method == MethodGetTable {
		m.SA.RMPPVersion, m.SA.RMPPType = RMPPVersion, RMPPTypeData
	}
	b := make([]byte, Size)
	if err := m.Encode(b); err != nil {
		return nil, err
	}
	if rec != nil {
		if rec.Len() > SADataLen {
			return nil, encodeErr(attr.Name(ClassSA), "record", ErrBadValue)
		}
		if err := rec.Encode(b[SADataOffset:]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// DMRequest builds a 256-byte DM request (class version 1) carrying rec
// (nil for a Get).
func DMRequest(method Method, attr AttrID, attrMod uint32, tid uint64, rec Record) ([]byte, error) {
	m := DMMessage{Header: Header{BaseVersion: BaseVersion, Class: ClassDM, ClassVersion: DMClassVersion,
		Method: method, TID: tid, AttrID: attr, AttrMod: attrMod}}
	b := make([]byte, Size)
	if err := m.Encode(b); err != nil {
		return nil, err
	}
	if rec != nil {
		if rec.Len() > DMDataLen {
			return nil, encodeErr(attr.Name(ClassDM), "record", ErrBadValue)
		}
		if err := rec.Encode(b[DMDataOffset:]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Record is an attribute with a fixed wire size.
type Record interface {
	// Len is the record's size on the wire.
	Len() int
	// Encode writes the record into b[:Len()], reserved bytes as 0.
	Encode(b []byte) error
}
