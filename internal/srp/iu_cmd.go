package srp

import (
	"encoding/binary"
	"fmt"
)

// DescFormat is a data buffer descriptor format: one nibble of SRP_CMD
// buf_fmt (high nibble DATA-OUT, low nibble DATA-IN).
type DescFormat uint8

const (
	DescNone     DescFormat = 0 // SRP_NO_DATA_DESC: no data in this direction
	DescDirect   DescFormat = 1 // SRP_DATA_DESC_DIRECT: one srp_direct_buf
	DescIndirect DescFormat = 2 // SRP_DATA_DESC_INDIRECT: srp_indirect_buf with a descriptor list
	DescImm      DescFormat = 3 // SRP_DATA_DESC_IMM (SRP2): srp_imm_buf, data inside the IU; DATA-OUT only
)

func (f DescFormat) String() string {
	switch f {
	case DescNone:
		return "NONE"
	case DescDirect:
		return "DIRECT"
	case DescIndirect:
		return "INDIRECT"
	case DescImm:
		return "IMM"
	}
	return fmt.Sprintf("DescFormat(%d)", uint8(f))
}

// TaskAttr is the SAM task attribute of SRP_CMD (ib_srp always sends Simple).
type TaskAttr uint8

const (
	TaskSimple      TaskAttr = 0
	TaskHeadOfQueue TaskAttr = 1
	TaskOrdered     TaskAttr = 2
	TaskACA         TaskAttr = 4
)

func (a TaskAttr) String() string {
	switch a {
	case TaskSimple:
		return "SIMPLE"
	case TaskHeadOfQueue:
		return "HEAD_OF_QUEUE"
	case TaskOrdered:
		return "ORDERED"
	case TaskACA:
		return "ACA"
	}
	return fmt.Sprintf("TaskAttr(%d)", uint8(a))
}

// DirectBuf is struct srp_direct_buf: one registered memory region the
// target reads or writes with RDMA.
type DirectBuf struct {
	Addr uint64 // va
	Key  uint32 // rkey
	Len  uint32
}

func (d DirectBuf) put(b []byte) {
	binary.BigEndian.PutUint64(b, d.Addr)
	binary.BigEndian.PutUint32(b[8:], d.Key)
	binary.BigEndian.PutUint32(b[12:], d.Len)
}

func getDirect(b []byte) DirectBuf {
	return DirectBuf{
		Addr: binary.BigEndian.Uint64(b),
		Key:  binary.BigEndian.Uint32(b[8:]),
		Len:  binary.BigEndian.Uint32(b[12:]),
	}
}

// Encode writes the 16-byte descriptor.
func (d DirectBuf) Encode(b []byte) (int, error) {
	if len(b) < DirectBufLen {
		return 0, encodeErr(OpCmd, "srp_direct_buf", ErrShortBuffer)
	}
	d.put(b)
	return DirectBufLen, nil
}

// Decode parses a 16-byte descriptor.
func (d *DirectBuf) Decode(b []byte) error {
	if len(b) < DirectBufLen {
		return decodeErr(OpCmd, "srp_direct_buf", len(b), ErrShortBuffer)
	}
	*d = getDirect(b)
	return nil
}

// IndirectBuf is struct srp_indirect_buf: the descriptor of a descriptor
// table plus the part of the table carried in the IU.
type IndirectBuf struct {
	// Table describes the whole descriptor table in registered memory
	// (Len = 16 × number of descriptors). ib_srpt never reads a table
	// from there, so every descriptor must also be in Descs; ib_srp still
	// points Table at a registered copy.
	Table DirectBuf
	// Len is the total data length of all descriptors.
	Len uint32
	// Descs are the descriptors in the IU (desc_list). Decode reuses the
	// slice's capacity and does not alias its input.
	Descs []DirectBuf
}

// EncodedLen is the wire size: 20 + 16 × len(Descs).
func (d *IndirectBuf) EncodedLen() int { return IndirectBufLen + DirectBufLen*len(d.Descs) }

// Complete reports whether every descriptor of Table is in Descs. ib_srpt
// rejects a command whose table is not complete.
func (d *IndirectBuf) Complete() bool { return int(d.Table.Len/DirectBufLen) <= len(d.Descs) }

// Encode writes the indirect descriptor with its list.
func (d *IndirectBuf) Encode(b []byte) (int, error) {
	n := d.EncodedLen()
	if len(b) < n {
		return 0, encodeErr(OpCmd, "srp_indirect_buf", ErrShortBuffer)
	}
	d.Table.put(b)
	binary.BigEndian.PutUint32(b[DirectBufLen:], d.Len)
	off := IndirectBufLen
	for _, x := range d.Descs {
		x.put(b[off:])
		off += DirectBufLen
	}
	return n, nil
}

// Decode parses an indirect descriptor followed by count descriptors and
// returns the number of bytes it used.
func (d *IndirectBuf) Decode(b []byte, count int) (int, error) {
	// Compare counts, not byte lengths: DirectBufLen*count can overflow.
	if count < 0 || len(b) < IndirectBufLen || count > (len(b)-IndirectBufLen)/DirectBufLen {
		return 0, decodeErr(OpCmd, "srp_indirect_buf", len(b), ErrBadLength)
	}
	n := IndirectBufLen + DirectBufLen*count
	d.Table = getDirect(b)
	d.Len = binary.BigEndian.Uint32(b[DirectBufLen:])
	d.Descs = d.Descs[:0]
	for off := IndirectBufLen; off < n; off += DirectBufLen {
		d.Descs = append(d.Descs, getDirect(b[off:]))
	}
	return n, nil
}

// DataDesc is the data buffer descriptor of one direction of SRP_CMD. Only the
// member that Format selects is encoded; Decode zeroes the others.
type DataDesc struct {
	Format DescFormat
	// Count is the descriptor count field (data_out_desc_cnt or
	// data_in_desc_cnt). For DescIndirect the encoder writes
	// len(Indirect.Descs) and ignores Count; for the other formats it writes
	// Count as is (ib_srp sends 0 with a direct descriptor and ib_srpt
	// ignores it).
	Count    uint8
	Direct   DirectBuf   // DescDirect
	Indirect IndirectBuf // DescIndirect
	// ImmLen is the length of the immediate data (DescImm). The data
	// itself starts at the immediate data offset negotiated at login; see
	// Cmd.EncodeImm and Cmd.ImmData.
	ImmLen uint32
}

func (d *DataDesc) encodedLen() int {
	switch d.Format {
	case DescDirect:
		return DirectBufLen
	case DescIndirect:
		return d.Indirect.EncodedLen()
	case DescImm:
		return ImmBufLen
	}
	return 0
}

func (d *DataDesc) wireCount() (uint8, error) {
	if d.Format != DescIndirect {
		return d.Count, nil
	}
	if len(d.Indirect.Descs) > 0xff {
		return 0, ErrBadLength
	}
	return uint8(len(d.Indirect.Descs)), nil
}

func (d *DataDesc) encode(b []byte) {
	switch d.Format {
	case DescDirect:
		d.Direct.put(b)
	case DescIndirect:
		_, _ = d.Indirect.Encode(b) // length checked by the caller
	case DescImm:
		binary.BigEndian.PutUint32(b, d.ImmLen)
	}
}

// decode parses a descriptor of format f with wire count cnt at b[off:] and
// returns the offset after it.
func (d *DataDesc) decode(b []byte, off int, f DescFormat, cnt uint8, field string) (int, error) {
	descs := d.Indirect.Descs[:0]
	*d = DataDesc{Format: f, Count: cnt}
	switch f {
	case DescDirect:
		if len(b)-off < DirectBufLen {
			return 0, decodeErr(OpCmd, field, off, ErrBadLength)
		}
		d.Direct = getDirect(b[off:])
		return off + DirectBufLen, nil
	case DescIndirect:
		d.Indirect.Descs = descs
		n, err := d.Indirect.Decode(b[off:], int(cnt))
		if err != nil {
			return 0, decodeErr(OpCmd, field, off, ErrBadLength)
		}
		return off + n, nil
	case DescImm:
		if len(b)-off < ImmBufLen {
			return 0, decodeErr(OpCmd, field, off, ErrBadLength)
		}
		d.ImmLen = binary.BigEndian.Uint32(b[off:])
		return off + ImmBufLen, nil
	}
	d.Indirect.Descs = descs
	return off, nil
}

// Cmd is SRP_CMD: 48 bytes, the additional CDB bytes, then the DATA-OUT
// descriptor and the DATA-IN descriptor (each present unless its format is
// DescNone).
type Cmd struct {
	SolNot   uint8
	Tag      Tag
	LUN      LUN
	TaskAttr TaskAttr
	// CDB is the command descriptor block. Encode pads one shorter than 16
	// bytes with zeros and puts the bytes past 16 into the additional CDB,
	// rounded up to a multiple of 4. Decode returns the 16 bytes of the CDB
	// field plus the additional CDB bytes as a subslice of its input
	// (aliasing it: copy it before reusing the receive buffer).
	CDB     []byte
	DataOut DataDesc
	DataIn  DataDesc
}

const (
	cmdSolNot   = 1
	cmdBufFmt   = 5
	cmdOutCnt   = 6
	cmdInCnt    = 7
	cmdTag      = 8
	cmdLUN      = 20
	cmdTaskAttr = 29
	cmdAddCDB   = 31
	cmdCDB      = 32

	addCDBReserved = 0x03 // low bits of add_cdb_len, reserved
	nibble         = 4
	nibbleMask     = 0x0f
)

func (*Cmd) Opcode() Opcode { return OpCmd }

func (c *Cmd) addCDBLen() int {
	if len(c.CDB) <= CDBLen {
		return 0
	}
	return (len(c.CDB) - CDBLen + addCDBReserved) &^ addCDBReserved
}

// Len is the encoded size: 48 + additional CDB + descriptors (without
// immediate data).
func (c *Cmd) Len() int {
	return CmdLen + c.addCDBLen() + c.DataOut.encodedLen() + c.DataIn.encodedLen()
}

// Encode writes the IU into b. It does not allocate, so a channel can build
// the IU directly in its registered transmit buffer.
func (c *Cmd) Encode(b []byte) (int, error) {
	if len(c.CDB) > MaxCDBLen {
		return 0, encodeErr(OpCmd, "cdb", ErrBadLength)
	}
	if c.DataOut.Format > DescImm {
		return 0, encodeErr(OpCmd, "buf_fmt", ErrBadFormat)
	}
	if c.DataIn.Format > DescIndirect {
		return 0, encodeErr(OpCmd, "buf_fmt", ErrBadFormat)
	}
	outCnt, err := c.DataOut.wireCount()
	if err != nil {
		return 0, encodeErr(OpCmd, "data_out_desc_cnt", err)
	}
	inCnt, err := c.DataIn.wireCount()
	if err != nil {
		return 0, encodeErr(OpCmd, "data_in_desc_cnt", err)
	}
	n := c.Len()
	if err := prepDst(b, OpCmd, n); err != nil {
		return 0, err
	}
	add := c.addCDBLen()
	b[0] = byte(OpCmd)
	b[cmdSolNot] = c.SolNot
	b[cmdBufFmt] = byte(c.DataOut.Format)<<nibble | byte(c.DataIn.Format)
	b[cmdOutCnt] = outCnt
	b[cmdInCnt] = inCnt
	putTag(b[cmdTag:], c.Tag)
	copy(b[cmdLUN:], c.LUN[:])
	b[cmdTaskAttr] = byte(c.TaskAttr)
	b[cmdAddCDB] = byte(add)
	copy(b[cmdCDB:], c.CDB)
	off := CmdLen + add
	c.DataOut.encode(b[off:])
	off += c.DataOut.encodedLen()
	c.DataIn.encode(b[off:])
	return n, nil
}

func (c *Cmd) AppendTo(b []byte) ([]byte, error) {
	all, tail := grow(b, c.Len())
	n, err := c.Encode(tail)
	return appendEnc(b, all, n, err)
}

// EncodeImm writes an SRP_CMD with immediate data: the IU as Encode does,
// zeros up to immDataOffset (the offset agreed at login), then data. With
// data == nil it stops at immDataOffset, for a sender that posts the data as
// a second gather element; otherwise len(data) must equal DataOut.ImmLen. It
// returns the bytes written and does not allocate.
func (c *Cmd) EncodeImm(b []byte, immDataOffset int, data []byte) (int, error) {
	if err := c.checkImm(immDataOffset, data); err != nil {
		return 0, err
	}
	total := immDataOffset + len(data)
	if len(b) < total {
		return 0, encodeErr(OpCmd, "iu", ErrShortBuffer)
	}
	n, err := c.Encode(b)
	if err != nil {
		return 0, err
	}
	clear(b[n:immDataOffset])
	copy(b[immDataOffset:], data)
	return total, nil
}

func (c *Cmd) checkImm(immDataOffset int, data []byte) error {
	if c.DataOut.Format != DescImm {
		return encodeErr(OpCmd, "buf_fmt", ErrBadFormat)
	}
	if data != nil && uint64(len(data)) != uint64(c.DataOut.ImmLen) {
		return encodeErr(OpCmd, "srp_imm_buf.len", ErrBadLength)
	}
	// The offset is a 16-bit login field (imm_data_offset).
	if immDataOffset < c.Len() || immDataOffset > maxImmDataOffset {
		return encodeErr(OpCmd, "imm_data_offset", ErrBadLength)
	}
	return nil
}

const maxImmDataOffset = 1<<16 - 1

// AppendImmTo appends what EncodeImm writes.
func (c *Cmd) AppendImmTo(b []byte, immDataOffset int, data []byte) ([]byte, error) {
	if err := c.checkImm(immDataOffset, data); err != nil {
		return b, err
	}
	all, tail := grow(b, immDataOffset+len(data))
	n, err := c.EncodeImm(tail, immDataOffset, data)
	return appendEnc(b, all, n, err)
}

// Decode parses an SRP_CMD. CDB aliases b; DataOut/DataIn Indirect.Descs
// reuse their capacity, so a target decoding into one Cmd per receive slot
// does not allocate in steady state.
func (c *Cmd) Decode(b []byte) error {
	if err := checkIU(b, OpCmd, CmdLen); err != nil {
		return err
	}
	add := int(b[cmdAddCDB])
	if add&addCDBReserved != 0 {
		return decodeErr(OpCmd, "add_cdb_len", cmdAddCDB, ErrReserved)
	}
	if len(b) < CmdLen+add {
		return decodeErr(OpCmd, "add_cdb_len", cmdAddCDB, ErrBadLength)
	}
	outFmt := DescFormat(b[cmdBufFmt] >> nibble)
	inFmt := DescFormat(b[cmdBufFmt] & nibbleMask)
	if outFmt > DescImm || inFmt > DescIndirect {
		return decodeErr(OpCmd, "buf_fmt", cmdBufFmt, ErrBadFormat)
	}
	c.SolNot = b[cmdSolNot]
	c.Tag = getTag(b[cmdTag:])
	copy(c.LUN[:], b[cmdLUN:])
	c.TaskAttr = TaskAttr(b[cmdTaskAttr])
	c.CDB = aliasAt(b, cmdCDB, CDBLen+add)
	off, err := c.DataOut.decode(b, CmdLen+add, outFmt, b[cmdOutCnt], "data_out_desc")
	if err != nil {
		return err
	}
	if _, err := c.DataIn.decode(b, off, inFmt, b[cmdInCnt], "data_in_desc"); err != nil {
		return err
	}
	return nil
}

// ImmData returns the immediate data of a decoded SRP_CMD with a DescImm
// DATA-OUT descriptor, as a subslice of iu (the same bytes Decode was given).
// It applies ib_srpt's checks: the descriptors end at or before
// immDataOffset, and the data ends inside iu.
func (c *Cmd) ImmData(iu []byte, immDataOffset int) ([]byte, error) {
	if c.DataOut.Format != DescImm {
		return nil, decodeErr(OpCmd, "buf_fmt", cmdBufFmt, ErrBadFormat)
	}
	if immDataOffset < c.Len() {
		return nil, decodeErr(OpCmd, "imm_data_offset", immDataOffset, ErrBadLength)
	}
	end := uint64(immDataOffset) + uint64(c.DataOut.ImmLen)
	if end > uint64(len(iu)) {
		return nil, decodeErr(OpCmd, "srp_imm_buf.len", immDataOffset, ErrBadLength)
	}
	return aliasAt(iu, immDataOffset, int(c.DataOut.ImmLen)), nil
}
