package srp

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// span is a reserved byte range [from, to) of an IU's fixed part.
type span struct{ from, to int }

// reservedSpans lists the reserved bytes of each IU (include/scsi/srp.h).
var reservedSpans = map[Opcode][]span{
	OpLoginReq: {{1, 8}, {20, 24}, {27, 28}, {30, 32}},
	OpLoginRsp: {{1, 4}, {27, 52}},
	OpLoginRej: {{1, 4}, {16, 24}, {26, 32}},
	OpILogout:  {{1, 8}},
	OpTLogout:  {{2, 4}},
	OpTskMgmt:  {{2, 8}, {16, 20}, {28, 30}, {31, 32}, {40, 48}},
	OpCmd:      {{2, 5}, {16, 20}, {28, 29}, {30, 31}},
	OpRsp:      {{2, 4}, {16, 18}},
	OpCredReq:  {{2, 4}},
	OpCredRsp:  {{1, 8}},
	OpAerReq:   {{2, 4}, {16, 20}, {32, 36}},
	OpAerRsp:   {{1, 8}},
}

// rdmaLoginReserved is the reserved tail of the RDMA/CM login request.
var rdmaLoginReserved = []span{{50, 56}}

// canonical returns the first n bytes of b with its reserved bytes zeroed:
// what an encoder must produce for the value decoded from b.
func canonical(b []byte, n int, reserved []span) []byte {
	c := bytes.Clone(b[:n])
	for _, s := range reserved {
		clear(c[s.from:s.to])
	}
	return c
}

func addGoldenSeeds(f *testing.F, names ...string) {
	for _, n := range names {
		f.Add(golden(f, n))
	}
}

func allGoldenNames() []string {
	names := []string{"login_req_rdma", "cmd_write_imm"}
	for _, c := range goldenCases() {
		names = append(names, c.name)
	}
	return names
}

// checkDecodeErr asserts the documented error contract of a decoder.
func checkDecodeErr(t *testing.T, err error) {
	t.Helper()
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("decode error %v (%T) is not a *DecodeError", err, err)
	}
	for _, s := range []error{ErrShortBuffer, ErrBadOpcode, ErrBadLength, ErrBadFormat, ErrReserved} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("decode error %v wraps no sentinel", err)
}

// roundTrip is the invariant every decoder fuzz target checks: if b decodes,
// the value encodes to exactly b's IU bytes with reserved bytes zeroed, and
// that encoding decodes to the same value.
func roundTrip(t *testing.T, b []byte, fresh func() IU) {
	v1 := fresh()
	if err := v1.Decode(b); err != nil {
		checkDecodeErr(t, err)
		return
	}
	enc, err := v1.AppendTo(nil)
	if err != nil {
		t.Fatalf("decoded value does not encode: %v\n%+v", err, v1)
	}
	if len(enc) != v1.Len() || len(enc) > len(b) {
		t.Fatalf("encoded %d bytes, Len() %d, input %d", len(enc), v1.Len(), len(b))
	}
	if want := canonical(b, len(enc), reservedSpans[v1.Opcode()]); !bytes.Equal(enc, want) {
		t.Fatalf("re-encoding differs:\n got %x\nwant %x", enc, want)
	}
	v2 := fresh()
	if err := v2.Decode(enc); err != nil {
		t.Fatalf("re-encoded IU does not decode: %v", err)
	}
	if diff := cmp.Diff(v1, v2, cmpOpts...); diff != "" {
		t.Fatalf("round trip changed the value (-first +second):\n%s", diff)
	}
}

func fuzzIU(f *testing.F, fresh func() IU, seeds ...string) {
	addGoldenSeeds(f, seeds...)
	op := fresh().Opcode()
	f.Add([]byte{byte(op)})
	f.Add(append([]byte{byte(op)}, make([]byte, 64)...))
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, b, fresh) })
}

func FuzzLoginReq(f *testing.F) {
	fuzzIU(f, func() IU { return new(LoginReq) }, "login_req")
}

func FuzzLoginRsp(f *testing.F) {
	fuzzIU(f, func() IU { return new(LoginRsp) }, "login_rsp")
}

func FuzzLoginRej(f *testing.F) {
	fuzzIU(f, func() IU { return new(LoginRej) }, "login_rej")
}

func FuzzILogout(f *testing.F) {
	fuzzIU(f, func() IU { return new(ILogout) }, "i_logout")
}

func FuzzTLogout(f *testing.F) {
	fuzzIU(f, func() IU { return new(TLogout) }, "t_logout")
}

func FuzzTskMgmt(f *testing.F) {
	fuzzIU(f, func() IU { return new(TskMgmt) }, "tsk_mgmt_abort")
}

func FuzzCmd(f *testing.F) {
	fuzzIU(f, func() IU { return new(Cmd) }, "cmd_read_direct", "cmd_write_imm", "cmd_write_indirect")
}

func FuzzRsp(f *testing.F) {
	fuzzIU(f, func() IU { return new(Rsp) }, "rsp_good", "rsp_check_condition", "rsp_tsk_mgmt", "rsp_diunder")
}

func FuzzCredReq(f *testing.F) {
	fuzzIU(f, func() IU { return new(CredReq) }, "cred_req")
}

func FuzzCredRsp(f *testing.F) {
	fuzzIU(f, func() IU { return new(CredRsp) }, "cred_rsp")
}

func FuzzAerReq(f *testing.F) {
	fuzzIU(f, func() IU { return new(AerReq) }, "aer_req")
}

func FuzzAerRsp(f *testing.F) {
	fuzzIU(f, func() IU { return new(AerRsp) }, "aer_rsp")
}

// FuzzLoginReqRDMA checks the 56-byte RDMA/CM form, and that both forms
// carry the same value.
func FuzzLoginReqRDMA(f *testing.F) {
	addGoldenSeeds(f, "login_req_rdma")
	f.Add(make([]byte, LoginReqRDMALen-1))
	f.Fuzz(func(t *testing.T, b []byte) {
		var v1 LoginReq
		if err := v1.DecodeRDMA(b); err != nil {
			checkDecodeErr(t, err)
			return
		}
		enc, err := v1.AppendRDMATo(nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := canonical(b, LoginReqRDMALen, rdmaLoginReserved); !bytes.Equal(enc, want) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", enc, want)
		}
		var v2, v3 LoginReq
		if err := v2.DecodeRDMA(enc); err != nil {
			t.Fatal(err)
		}
		ib, err := v1.AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := v3.Decode(ib); err != nil {
			t.Fatal(err)
		}
		if v1 != v2 || v1 != v3 {
			t.Fatalf("values differ: %+v %+v %+v", v1, v2, v3)
		}
	})
}

// FuzzDecodeIU dispatches on the opcode byte like a receive path and checks
// the round trip of whatever it decodes.
func FuzzDecodeIU(f *testing.F) {
	addGoldenSeeds(f, allGoldenNames()...)
	f.Add([]byte{})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		iu, err := DecodeIU(b)
		if err != nil {
			checkDecodeErr(t, err)
			return
		}
		if iu.Opcode() != Opcode(b[0]) {
			t.Fatalf("DecodeIU(%#x...) returned a %v", b[0], iu.Opcode())
		}
		roundTrip(t, b, func() IU { return newLike(iu) })
	})
}

// FuzzPeekOpcode checks PeekOpcode and PeekTag against the byte layout.
func FuzzPeekOpcode(f *testing.F) {
	addGoldenSeeds(f, allGoldenNames()...)
	f.Add([]byte{})
	f.Add([]byte{0x55})
	f.Fuzz(func(t *testing.T, b []byte) {
		op, err := PeekOpcode(b)
		switch {
		case len(b) == 0:
			if !errors.Is(err, ErrShortBuffer) {
				t.Fatalf("empty: %v", err)
			}
		case Opcode(b[0]).Known():
			if err != nil || op != Opcode(b[0]) {
				t.Fatalf("PeekOpcode = %v, %v", op, err)
			}
		default:
			if !errors.Is(err, ErrBadOpcode) || op != Opcode(b[0]) {
				t.Fatalf("PeekOpcode(%#x) = %v, %v", b[0], op, err)
			}
		}
		tag, err := PeekTag(b)
		if len(b) < 16 {
			if !errors.Is(err, ErrShortBuffer) {
				t.Fatalf("PeekTag short: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		var enc [8]byte
		putTag(enc[:], tag)
		if !bytes.Equal(enc[:], b[8:16]) {
			t.Fatalf("PeekTag = %v from %x", tag, b[8:16])
		}
	})
}

// FuzzIndirectBuf checks the descriptor table codec on its own.
func FuzzIndirectBuf(f *testing.F) {
	b := golden(f, "cmd_write_indirect")
	f.Add(b[CmdLen:], 2)
	f.Add(b[CmdLen:], 3)
	f.Add([]byte{}, 0)
	f.Add(make([]byte, IndirectBufLen), -1)
	f.Add(make([]byte, IndirectBufLen), 1<<60) // 16·count overflows int
	f.Fuzz(func(t *testing.T, b []byte, count int) {
		var d1 IndirectBuf
		n, err := d1.Decode(b, count)
		if err != nil {
			checkDecodeErr(t, err)
			return
		}
		if count < 0 || n != IndirectBufLen+DirectBufLen*count || len(d1.Descs) != count {
			t.Fatalf("Decode(len %d, count %d) = %d with %d descs", len(b), count, n, len(d1.Descs))
		}
		enc := make([]byte, d1.EncodedLen())
		if m, err := d1.Encode(enc); err != nil || m != n {
			t.Fatalf("Encode = %d, %v", m, err)
		}
		if !bytes.Equal(enc, b[:n]) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", enc, b[:n])
		}
		d2 := IndirectBuf{Descs: make([]DirectBuf, 5)} // stale contents must not leak
		if _, err := d2.Decode(enc, count); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(d1, d2, cmpOpts...); diff != "" {
			t.Fatalf("round trip:\n%s", diff)
		}
	})
}

// FuzzCmdImmData checks ImmData's bounds against a decoded SRP_CMD.
func FuzzCmdImmData(f *testing.F) {
	f.Add(golden(f, "cmd_write_imm"), DefaultImmDataOffset)
	f.Add(golden(f, "cmd_write_imm"), 52)
	f.Add(golden(f, "cmd_write_imm"), 1<<20)
	f.Add(golden(f, "cmd_read_direct"), DefaultImmDataOffset)
	f.Fuzz(func(t *testing.T, b []byte, off int) {
		var c Cmd
		if err := c.Decode(b); err != nil {
			return
		}
		data, err := c.ImmData(b, off)
		if err != nil {
			checkDecodeErr(t, err)
			return
		}
		if c.DataOut.Format != DescImm || off < c.Len() || len(data) != int(c.DataOut.ImmLen) ||
			off+len(data) > len(b) || (len(data) > 0 && &data[0] != &b[off]) {
			t.Fatalf("ImmData(off %d) accepted: fmt %v, Len %d, %d bytes of %d", off, c.DataOut.Format, c.Len(), len(data), len(b))
		}
		enc, err := c.AppendImmTo(nil, off, data)
		if err != nil {
			t.Fatal(err)
		}
		hdr := c.Len()
		if len(enc) != off+len(data) || !bytes.Equal(enc[:hdr], canonical(b, hdr, reservedSpans[OpCmd])) ||
			!bytes.Equal(enc[hdr:off], make([]byte, off-hdr)) || !bytes.Equal(enc[off:], data) {
			t.Fatalf("AppendImmTo(off %d) = %x", off, enc)
		}
		var c2 Cmd
		if err := c2.Decode(enc); err != nil {
			t.Fatal(err)
		}
		data2, err := c2.ImmData(enc, off)
		if err != nil || !bytes.Equal(data, data2) {
			t.Fatalf("ImmData after re-encoding = %x, %v", data2, err)
		}
	})
}

// FuzzCmdEncode builds an SRP_CMD from fuzzed fields, so the encoder sees
// values no decoder produced (short CDBs, counts that disagree with the list).
func FuzzCmdEncode(f *testing.F) {
	f.Add([]byte{0x28, 0, 0, 0, 0, 0x10, 0, 0, 8, 0}, uint8(0x01), uint8(0), uint8(0), uint64(7), uint32(4096))
	f.Add(make([]byte, 32), uint8(0x20), uint8(3), uint8(9), uint64(1), uint32(1))
	f.Add(make([]byte, 17), uint8(0x30), uint8(1), uint8(0), uint64(1), uint32(512))
	f.Fuzz(func(t *testing.T, cdb []byte, bufFmt, ndesc, count uint8, tag uint64, length uint32) {
		c := Cmd{Tag: Tag(tag), LUN: LUNFromInt(tag), CDB: cdb}
		descs := make([]DirectBuf, ndesc%8)
		for i := range descs {
			descs[i] = DirectBuf{Addr: tag + uint64(i), Key: length, Len: length}
		}
		for _, d := range []*DataDesc{&c.DataOut, &c.DataIn} {
			d.Count = count
			d.Direct = DirectBuf{Addr: tag, Key: 1, Len: length}
			d.Indirect = IndirectBuf{Table: DirectBuf{Addr: tag, Len: uint32(len(descs) * DirectBufLen)}, Len: length, Descs: descs}
			d.ImmLen = length
		}
		c.DataOut.Format = DescFormat(bufFmt >> 4)
		c.DataIn.Format = DescFormat(bufFmt & 0xf)
		enc, err := c.AppendTo(nil)
		if err != nil {
			var ee *EncodeError
			if !errors.As(err, &ee) {
				t.Fatalf("encode error %v is not an *EncodeError", err)
			}
			if len(cdb) <= MaxCDBLen && c.DataOut.Format <= DescImm && c.DataIn.Format <= DescIndirect {
				t.Fatalf("valid command rejected: %v", err)
			}
			return
		}
		var got Cmd
		if err := got.Decode(enc); err != nil {
			t.Fatalf("encoded command does not decode: %v\n%x", err, enc)
		}
		if len(enc) != c.Len() || enc[31]&3 != 0 || len(got.CDB) < CDBLen || len(got.CDB)%4 != 0 ||
			!bytes.Equal(got.CDB[:min(len(cdb), len(got.CDB))], cdb) || bytes.ContainsFunc(got.CDB[len(cdb):], func(r rune) bool { return r != 0 }) {
			t.Fatalf("CDB %x encoded as %x", cdb, got.CDB)
		}
		for _, p := range [][2]*DataDesc{{&c.DataOut, &got.DataOut}, {&c.DataIn, &got.DataIn}} {
			want, have := p[0], p[1]
			if want.Format != have.Format {
				t.Fatalf("format %v became %v", want.Format, have.Format)
			}
			switch want.Format {
			case DescDirect:
				if have.Direct != want.Direct || have.Count != want.Count {
					t.Fatalf("direct %+v became %+v", want, have)
				}
			case DescIndirect:
				if int(have.Count) != len(want.Indirect.Descs) || !cmp.Equal(want.Indirect, have.Indirect, cmpOpts...) {
					t.Fatalf("indirect %+v became %+v", want.Indirect, have.Indirect)
				}
			case DescImm:
				if have.ImmLen != want.ImmLen {
					t.Fatalf("imm %d became %d", want.ImmLen, have.ImmLen)
				}
			}
		}
	})
}
