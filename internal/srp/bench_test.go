package srp

import "testing"

// benchCmd is what the data path sends most: a READ(10) with one direct
// descriptor into a registered buffer.
func benchCmd() *Cmd {
	return &Cmd{
		Tag: 7, LUN: LUNFromInt(1),
		CDB:    []byte{0x28, 0, 0, 0, 0, 0x10, 0, 0, 0x08, 0},
		DataIn: DataDesc{Format: DescDirect, Direct: DirectBuf{Addr: 0x7f0000001000, Key: 0x1234, Len: 4096}},
	}
}

// TestZeroAllocs keeps the data path codecs allocation free: encoding an
// SRP_CMD into a transmit buffer and decoding an SRP_RSP from a receive
// buffer happen once per I/O.
func TestZeroAllocs(t *testing.T) {
	tx := make([]byte, 8260)
	cmd := benchCmd()
	rspIU := golden(t, "rsp_check_condition")
	rx := make([]byte, 8260)
	copy(rx, rspIU)
	rx = rx[:len(rspIU)]
	immCmd := &Cmd{Tag: 8, CDB: make([]byte, CDBLen), DataOut: DataDesc{Format: DescImm, ImmLen: 512}}
	data := make([]byte, 512)
	var rsp Rsp
	var dec Cmd
	cmdIU := golden(t, "cmd_write_indirect")
	if err := dec.Decode(cmdIU); err != nil { // warm the descriptor list capacity
		t.Fatal(err)
	}
	cases := []struct {
		name string
		fn   func() error
	}{
		{"Cmd.Encode", func() error { _, err := cmd.Encode(tx); return err }},
		{"Cmd.AppendTo", func() error { _, err := cmd.AppendTo(tx[:0]); return err }},
		{"Cmd.EncodeImm", func() error { _, err := immCmd.EncodeImm(tx, DefaultImmDataOffset, data); return err }},
		{"Rsp.Decode", func() error { return rsp.Decode(rx) }},
		{"Cmd.Decode(indirect, reused)", func() error { return dec.Decode(cmdIU) }},
		{"PeekOpcode+PeekTag", func() error {
			if _, err := PeekOpcode(rx); err != nil {
				return err
			}
			_, err := PeekTag(rx)
			return err
		}},
		{"TskMgmt.Encode", func() error {
			tm := TskMgmt{Tag: TagTskMgmt | 1, LUN: LUNFromInt(1), Func: TMAbortTask, TaskTag: 7}
			_, err := tm.Encode(tx)
			return err
		}},
	}
	for _, c := range cases {
		var err error
		allocs := testing.AllocsPerRun(100, func() {
			if e := c.fn(); e != nil {
				err = e
			}
		})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if allocs != 0 {
			t.Errorf("%s: %v allocs per run, want 0", c.name, allocs)
		}
	}
	if len(rsp.Sense) != 18 {
		t.Fatalf("decoded sense has %d bytes", len(rsp.Sense))
	}
}

func BenchmarkCmdEncodeDirect(b *testing.B) {
	tx := make([]byte, 8260)
	cmd := benchCmd()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cmd.Encode(tx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCmdAppendDirect(b *testing.B) {
	tx := make([]byte, 0, 8260)
	cmd := benchCmd()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cmd.AppendTo(tx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRspDecode(b *testing.B) {
	rx := golden(b, "rsp_check_condition")
	var rsp Rsp
	b.ReportAllocs()
	for b.Loop() {
		if err := rsp.Decode(rx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCmdDecodeIndirect(b *testing.B) {
	rx := golden(b, "cmd_write_indirect")
	var cmd Cmd
	b.ReportAllocs()
	for b.Loop() {
		if err := cmd.Decode(rx); err != nil {
			b.Fatal(err)
		}
	}
}
