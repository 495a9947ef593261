package srp

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Every decoder refuses an IU shorter than its fixed part (§5 property list)
// and a wrong opcode byte.
func TestDecodeShortAndWrongOpcode(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			b := golden(t, tc.name)
			fixed := fixedLen(tc.want.Opcode())
			for n := 0; n < fixed; n++ {
				err := newLike(tc.want).Decode(b[:n])
				var de *DecodeError
				if !errors.As(err, &de) || de.IU != tc.want.Opcode() {
					t.Fatalf("Decode(%d bytes) = %v", n, err)
				}
				if !errors.Is(err, ErrShortBuffer) {
					t.Fatalf("Decode(%d bytes) = %v, want ErrShortBuffer", n, err)
				}
			}
			bad := bytes.Clone(b)
			bad[0] ^= 0x40
			if err := newLike(tc.want).Decode(bad); !errors.Is(err, ErrBadOpcode) {
				t.Fatalf("Decode with opcode %#x = %v", bad[0], err)
			}
			if _, err := tc.want.Encode(make([]byte, len(b)-1)); !errors.Is(err, ErrShortBuffer) {
				t.Fatalf("Encode into %d bytes = %v", len(b)-1, err)
			}
		})
	}
}

func fixedLen(op Opcode) int {
	switch op {
	case OpLoginReq:
		return LoginReqLen
	case OpLoginRsp:
		return LoginRspLen
	case OpLoginRej:
		return LoginRejLen
	case OpTskMgmt:
		return TskMgmtLen
	case OpCmd:
		return CmdLen
	case OpRsp:
		return RspLen
	case OpAerReq:
		return AerReqLen
	}
	return ILogoutLen // every 16-byte IU
}

func TestLoginReqRDMAErrors(t *testing.T) {
	b := golden(t, "login_req_rdma")
	var r LoginReq
	// ib_srpt refuses RDMA/CM private data shorter than 56 bytes.
	if err := r.DecodeRDMA(b[:LoginReqRDMALen-1]); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("55 bytes: %v", err)
	}
	bad := bytes.Clone(b)
	bad[11] = byte(OpCmd)
	var de *DecodeError
	if err := r.DecodeRDMA(bad); !errors.As(err, &de) || de.Offset != 11 || !errors.Is(err, ErrBadOpcode) {
		t.Fatalf("opcode at 11: %v", err)
	}
	// CM pads private data; the padding is ignored.
	if err := r.DecodeRDMA(append(bytes.Clone(b), make([]byte, 36)...)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.EncodeRDMA(make([]byte, LoginReqRDMALen-1)); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("EncodeRDMA short: %v", err)
	}
}

func TestCmdDecodeErrors(t *testing.T) {
	base := golden(t, "cmd_read_direct")
	tests := []struct {
		name  string
		edit  func(b []byte) []byte
		field string
		want  error
	}{
		// §5: reject add_cdb_len with bits 1..0 set.
		{"add_cdb_len reserved bits", func(b []byte) []byte { b[31] = 0x02; return b }, "add_cdb_len", ErrReserved},
		{"add_cdb_len past end", func(b []byte) []byte { b[31] = 0x20; return b }, "add_cdb_len", ErrBadLength},
		{"direct descriptor cut", func(b []byte) []byte { return b[:CmdLen+DirectBufLen-1] }, "data_in_desc", ErrBadLength},
		{"unknown DATA-IN format", func(b []byte) []byte { b[5] = 0x04; return b }, "buf_fmt", ErrBadFormat},
		{"IMM for DATA-IN", func(b []byte) []byte { b[5] = 0x03; return b }, "buf_fmt", ErrBadFormat},
		{"unknown DATA-OUT format", func(b []byte) []byte { b[5] = 0x40; return b }, "buf_fmt", ErrBadFormat},
		{"indirect count past end", func(b []byte) []byte { b[5] = 0x02; b[7] = 3; return b }, "data_in_desc", ErrBadLength},
		{"imm descriptor cut", func(b []byte) []byte { b[5] = 0x30; return b[:CmdLen+ImmBufLen-1] }, "data_out_desc", ErrBadLength},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Cmd
			err := c.Decode(tc.edit(bytes.Clone(base)))
			var de *DecodeError
			if !errors.As(err, &de) || de.Field != tc.field || !errors.Is(err, tc.want) {
				t.Fatalf("Decode = %v, want %s: %v", err, tc.field, tc.want)
			}
		})
	}
}

func TestCmdEncode(t *testing.T) {
	t.Run("32-byte CDB", func(t *testing.T) {
		cdb := bytes.Repeat([]byte{0xa5}, 32)
		c := Cmd{CDB: cdb, DataOut: DataDesc{Format: DescImm, ImmLen: 4}}
		b, err := c.AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		if b[31] != 16 || len(b) != CmdLen+16+ImmBufLen || c.Len() != DefaultImmDataOffset {
			t.Fatalf("add_cdb_len %d, len %d", b[31], len(b))
		}
	})
	t.Run("odd CDB rounds up", func(t *testing.T) {
		c := Cmd{CDB: bytes.Repeat([]byte{1}, 17)}
		b, err := c.AppendTo(nil)
		if err != nil || b[31] != 4 || len(b) != 52 || b[48] != 1 || b[49] != 0 {
			t.Fatalf("%v: %x", err, b)
		}
	})
	tests := []struct {
		name  string
		cmd   Cmd
		field string
		want  error
	}{
		{"CDB too long", Cmd{CDB: make([]byte, MaxCDBLen+1)}, "cdb", ErrBadLength},
		{"IMM for DATA-IN", Cmd{DataIn: DataDesc{Format: DescImm}}, "buf_fmt", ErrBadFormat},
		{"format out of range", Cmd{DataOut: DataDesc{Format: 7}}, "buf_fmt", ErrBadFormat},
		{"256 indirect descriptors", Cmd{DataOut: DataDesc{Format: DescIndirect, Indirect: IndirectBuf{Descs: make([]DirectBuf, 256)}}}, "data_out_desc_cnt", ErrBadLength},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cmd.AppendTo(nil)
			var ee *EncodeError
			if !errors.As(err, &ee) || ee.Field != tc.field || !errors.Is(err, tc.want) {
				t.Fatalf("AppendTo = %v, want %s: %v", err, tc.field, tc.want)
			}
		})
	}
}

func TestCmdImmErrors(t *testing.T) {
	c := Cmd{CDB: make([]byte, CDBLen), DataOut: DataDesc{Format: DescImm, ImmLen: 8}}
	buf := make([]byte, 128)
	if _, err := c.EncodeImm(buf, 51, nil); !errors.Is(err, ErrBadLength) {
		t.Fatalf("offset inside the header: %v", err)
	}
	if _, err := c.EncodeImm(buf, 68, make([]byte, 7)); !errors.Is(err, ErrBadLength) {
		t.Fatalf("data length != ImmLen: %v", err)
	}
	if _, err := c.EncodeImm(buf[:75], 68, make([]byte, 8)); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("short buffer: %v", err)
	}
	if _, err := c.AppendImmTo(nil, 1<<20, nil); !errors.Is(err, ErrBadLength) {
		t.Fatalf("offset beyond 16 bits: %v", err)
	}
	n, err := c.EncodeImm(buf, 52, make([]byte, 8))
	if err != nil || n != 60 {
		t.Fatalf("offset right after the header = %d, %v", n, err)
	}
	var d Cmd
	if err := d.Decode(buf[:n]); err != nil {
		t.Fatal(err)
	}
	// The data must end inside the IU, and the offset may not overlap the
	// descriptors (ib_srpt's checks).
	if _, err := d.ImmData(buf[:n-1], 52); !errors.Is(err, ErrBadLength) {
		t.Fatalf("data past the end: %v", err)
	}
	if _, err := d.ImmData(buf[:n], 51); !errors.Is(err, ErrBadLength) {
		t.Fatalf("offset overlapping the descriptor: %v", err)
	}
	direct := Cmd{DataIn: DataDesc{Format: DescDirect}}
	if _, err := direct.ImmData(buf, 68); !errors.Is(err, ErrBadFormat) {
		t.Fatalf("ImmData without IMM: %v", err)
	}
	if _, err := direct.EncodeImm(buf, 68, nil); !errors.Is(err, ErrBadFormat) {
		t.Fatalf("EncodeImm without IMM: %v", err)
	}
}

func TestRspDecodeLengths(t *testing.T) {
	base := golden(t, "rsp_check_condition")
	var r Rsp
	// sense_data_len one byte past the end.
	b := bytes.Clone(base)
	b[31] = 19
	if err := r.Decode(b); !errors.Is(err, ErrBadLength) {
		t.Fatalf("sense past end: %v", err)
	}
	// Huge lengths must not overflow the bounds check.
	b = bytes.Clone(base)
	copy(b[28:36], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if err := r.Decode(b); !errors.Is(err, ErrBadLength) {
		t.Fatalf("huge lengths: %v", err)
	}
	// Response data then sense: the sense starts after resp_data_len bytes.
	rsp := Rsp{Flags: RspValid | SnsValid, RespData: []byte{1, 2, 3, 4}, Sense: []byte{0x70, 0, 5}}
	enc, err := rsp.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Decode(enc); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.RespData, rsp.RespData) || !bytes.Equal(r.ValidSense(), rsp.Sense) {
		t.Fatalf("got resp %x sense %x", r.RespData, r.Sense)
	}
	// The subslices alias the buffer and cannot grow into each other.
	if &r.Sense[0] != &enc[RspLen+4] || cap(r.RespData) != 4 {
		t.Fatalf("RespData/Sense do not alias the input as documented")
	}
}

func TestRspHelpers(t *testing.T) {
	var r Rsp
	if err := r.Decode(golden(t, "rsp_diunder")); err != nil {
		t.Fatal(err)
	}
	if r.Residual() != 3584 || r.ValidSense() != nil {
		t.Fatalf("Residual %d, sense %x", r.Residual(), r.ValidSense())
	}
	if _, ok := r.TMResponse(); ok {
		t.Fatal("TMResponse ok without RSPVALID")
	}
	if got := (&Rsp{Flags: DataOutUnder | DataInOver, DataOutResid: 5, DataInResid: 9}).Residual(); got != 5 {
		t.Fatalf("DOUNDER residual = %d", got)
	}
	if err := r.Decode(golden(t, "rsp_tsk_mgmt")); err != nil {
		t.Fatal(err)
	}
	if code, ok := r.TMResponse(); !ok || code != TMComplete {
		t.Fatalf("TMResponse = %v, %v", code, ok)
	}
	d := TMRespData(TMFuncNotSupp)
	r.RespData = d[:]
	if code, ok := r.TMResponse(); !ok || code != TMFuncNotSupp {
		t.Fatalf("TMResponse = %v, %v", code, ok)
	}
	if r.Tag&TagTskMgmt == 0 {
		t.Fatal("SRP_TAG_TSK_MGMT bit not set in the task management response tag")
	}
}

func TestAerReqSenseBounds(t *testing.T) {
	b := golden(t, "aer_req")
	b[31] = 19
	var a AerReq
	if err := a.Decode(b); !errors.Is(err, ErrBadLength) {
		t.Fatalf("sense past end: %v", err)
	}
}

func TestPeek(t *testing.T) {
	if _, err := PeekOpcode(nil); !errors.Is(err, ErrShortBuffer) {
		t.Fatal(err)
	}
	op, err := PeekOpcode([]byte{0x99})
	if !errors.Is(err, ErrBadOpcode) || op != 0x99 {
		t.Fatalf("PeekOpcode(0x99) = %v, %v", op, err)
	}
	tag, err := PeekTag(golden(t, "tsk_mgmt_abort"))
	if err != nil || tag != TagTskMgmt|1 {
		t.Fatalf("PeekTag = %v, %v", tag, err)
	}
	if _, err := PeekTag(make([]byte, 15)); !errors.Is(err, ErrShortBuffer) {
		t.Fatal(err)
	}
	if _, err := DecodeIU([]byte{0x99}); !errors.Is(err, ErrBadOpcode) {
		t.Fatal(err)
	}
	iu, err := DecodeIU(golden(t, "rsp_good"))
	if r, ok := iu.(*Rsp); err != nil || !ok || r.Tag != 7 {
		t.Fatalf("DecodeIU = %#v, %v", iu, err)
	}
}

// The tag encoding is little-endian (Tag's doc): SRP_TAG_TSK_MGMT is in byte 3.
func TestTagEncoding(t *testing.T) {
	b, err := (&TskMgmt{Tag: TagTskMgmt, TaskTag: 0x0102030405060708}).AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	if b[8+3] != 0x80 || !bytes.Equal(b[32:40], []byte{8, 7, 6, 5, 4, 3, 2, 1}) {
		t.Fatalf("tags encoded as %x / %x", b[8:16], b[32:40])
	}
}

func TestLUN(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		wire LUN
	}{
		{0, LUN{}},
		{1, LUN{0, 1}},
		{255, LUN{0, 0xff}},
		{0x4101, LUN{0x41, 0x01}},     // flat space addressing, as REPORT LUNS gives it
		{0x00020001, LUN{0, 1, 0, 2}}, // two levels, first level first
	} {
		if got := LUNFromInt(tc.n); got != tc.wire {
			t.Errorf("LUNFromInt(%#x) = %v, want %v", tc.n, got, tc.wire)
		}
		if got := tc.wire.Int(); got != tc.n {
			t.Errorf("%v.Int() = %#x, want %#x", tc.wire, got, tc.n)
		}
	}
}

func TestPortIDs(t *testing.T) {
	if got := vecInitiator.String(); got != "0xfe80000000000000505400fffe123456" {
		t.Errorf("initiator String = %s", got)
	}
	if got := vecTarget.String(); got != "0x505400fffe654321505400fffe654321" {
		t.Errorf("target String = %s", got)
	}
	// Rev. 10 targets take GUID ‖ extension.
	req := LoginReq{InitiatorPortID: vecInitiator.Rev10(), TargetPortID: TargetPortID{IDExt: 1, IOCGUID: 2}.Rev10()}
	b, err := req.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	if b[32] != 0x50 || b[40] != 0xfe || b[55] != 2 || b[63] != 1 {
		t.Fatalf("rev10 ids: %x", b[32:64])
	}
}

func TestFlags(t *testing.T) {
	f := MakeLoginReqFlags(MultiChanMulti, true)
	if f != 0x81 || f.MultiChan() != MultiChanMulti || !f.ImmedRequested() || f.String() != "MULTI|IMMED_REQUESTED" {
		t.Errorf("req flags %#x %v", uint8(f), f)
	}
	g := MakeLoginRspFlags(MultiChanTerminated, false)
	if g != 0x01 || g.MultiChan() != MultiChanTerminated || g.ImmedSupported() || g.String() != "TERMINATED" {
		t.Errorf("rsp flags %#x %v", uint8(g), g)
	}
	if s := (RspValid | DataInUnder | 0x40).String(); s != "RSPVALID|DIUNDER|0x40" {
		t.Errorf("RspFlags.String = %s", s)
	}
	if s := RspFlags(0).String(); s != "0x0" && s != "0x00" {
		t.Errorf("RspFlags(0).String = %s", s)
	}
	if s := (BufFormatDirect | BufFormatIndirect).String(); s != "DIRECT|INDIRECT" {
		t.Errorf("BufFormats.String = %s", s)
	}
}

// Every named constant has a name, and unknown values still print.
func TestEnumStrings(t *testing.T) {
	named := []interface{ String() string }{
		OpLoginReq, OpTskMgmt, OpCmd, OpILogout, OpCredRsp, OpAerRsp, OpTLogout, OpCredReq, OpAerReq,
		OpLoginRsp, OpRsp, OpLoginRej,
		RejUnableEstablishChannel, RejInsufficientResources, RejReqITIULengthTooLarge, RejUnableAssociateChannel,
		RejUnsupportedDescriptorFmt, RejMultiChannelUnsupported, RejChannelLimitReached,
		TMAbortTask, TMAbortTaskSet, TMClearTaskSet, TMLUNReset, TMClearACA,
		TMComplete, TMFuncNotSupp, TMFailed,
		DescNone, DescDirect, DescIndirect, DescImm,
		TaskSimple, TaskHeadOfQueue, TaskOrdered, TaskACA,
		MultiChanSingle, MultiChanMulti, MultiChanNoChannel, MultiChanTerminated, MultiChanMaintained,
		IOClassRev16A, IOClassRev10,
	}
	seen := map[string]bool{}
	for _, v := range named {
		s := v.String()
		if strings.Contains(s, "(") || seen[fmt.Sprintf("%T:%s", v, s)] {
			t.Errorf("%T %v: String() = %q", v, v, s)
		}
		seen[fmt.Sprintf("%T:%s", v, s)] = true
	}
	unknown := []interface{ String() string }{
		Opcode(0x99), RejReason(7), TMFunc(0x99), TMResponse(9), DescFormat(9), TaskAttr(9),
		MultiChanAction(3), MultiChanResult(3), IOClass(1),
	}
	for _, v := range unknown {
		if s := v.String(); !strings.Contains(s, "(") {
			t.Errorf("%T unknown value: String() = %q", v, s)
		}
	}
}

func TestErrorStrings(t *testing.T) {
	var r Rsp
	err := r.Decode([]byte{byte(OpRsp), 0})
	want := "srp: decode SRP_RSP: iu at offset 2: short buffer"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %q, want %q", err, want)
	}
	_, err = (&Cmd{CDB: make([]byte, 300)}).AppendTo(nil)
	if err == nil || err.Error() != "srp: encode SRP_CMD: cdb: bad length" {
		t.Fatalf("error = %q", err)
	}
}
