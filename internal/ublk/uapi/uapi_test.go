package uapi

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// golden compares b with testdata/name.hex (hex, 16 bytes a line).
func golden(t *testing.T, name string, b []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".hex")
	var sb strings.Builder
	for i := 0; i < len(b); i += 16 {
		sb.WriteString(hex.EncodeToString(b[i:min(i+16, len(b))]))
		sb.WriteByte('\n')
	}
	if *update {
		if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if string(want) != sb.String() {
		t.Errorf("%s: encoding differs from golden\n got:\n%s\nwant:\n%s", name, sb.String(), want)
	}
}

// TestOpcodeTable checks every opcode against the values of research §1.3.
func TestOpcodeTable(t *testing.T) {
	ctrl := []struct {
		op     CtrlOp
		ioctl  uint32
		legacy bool
	}{
		{CmdGetQueueAffinity, 0x80207501, true},
		{CmdGetDevInfo, 0x80207502, true},
		{CmdAddDev, 0xc0207504, true},
		{CmdDelDev, 0xc0207505, true},
		{CmdStartDev, 0xc0207506, true},
		{CmdStopDev, 0xc0207507, true},
		{CmdSetParams, 0xc0207508, true},
		{CmdGetParams, 0x80207509, true},
		{CmdStartUserRecovery, 0xc0207510, true},
		{CmdEndUserRecovery, 0xc0207511, true},
		{CmdGetDevInfo2, 0x80207512, true},
		{CmdGetFeatures, 0x80207513, false},
		{CmdDelDevAsync, 0x80207514, false},
		{CmdUpdateSize, 0xc0207515, false},
		{CmdQuiesceDev, 0xc0207516, false},
	}
	for _, c := range ctrl {
		if got := c.op.Ioctl(); got != c.ioctl {
			t.Errorf("%v ioctl = %#x, want %#x", c.op, got, c.ioctl)
		}
		if c.op.HasLegacy() != c.legacy {
			t.Errorf("%v HasLegacy = %v, want %v", c.op, c.op.HasLegacy(), c.legacy)
		}
		if o, ok := CtrlOpOf(c.ioctl); !ok || o != c.op {
			t.Errorf("CtrlOpOf(%#x) = %v,%v", c.ioctl, o, ok)
		}
		if o, ok := CtrlOpOf(c.op.Legacy()); ok != c.legacy || (ok && o != c.op) {
			t.Errorf("CtrlOpOf(legacy %#x) = %v,%v", c.op.Legacy(), o, ok)
		}
		if strings.HasPrefix(c.op.String(), "CtrlOp(") {
			t.Errorf("%#x has no name", uint8(c.op))
		}
	}
	io := []struct {
		op    IOOp
		ioctl uint32
	}{{IOFetchReq, 0xc0107520}, {IOCommitAndFetchReq, 0xc0107521}, {IONeedGetData, 0xc0107522}}
	for _, c := range io {
		if got := c.op.Ioctl(); got != c.ioctl {
			t.Errorf("%v ioctl = %#x, want %#x", c.op, got, c.ioctl)
		}
		for _, enc := range []uint32{c.ioctl, c.op.Legacy()} {
			if o, ok := IOOpOf(enc); !ok || o != c.op {
				t.Errorf("IOOpOf(%#x) = %v,%v", enc, o, ok)
			}
		}
	}
	if _, ok := IOOpOf(0xc0107599); ok {
		t.Error("IOOpOf accepted an unknown op")
	}
}

// TestLab612Features decodes the GET_FEATURES answer of the lab's 6.12 kernel.
func TestLab612Features(t *testing.T) {
	const lab = Flag(0x1fe)
	want := "URING_CMD_COMP_IN_TASK|NEED_GET_DATA|USER_RECOVERY|USER_RECOVERY_REISSUE|UNPRIVILEGED_DEV|CMD_IOCTL_ENCODE|USER_COPY|ZONED"
	if got := lab.String(); got != want {
		t.Errorf("0x1fe = %s, want %s", got, want)
	}
	if lab&FlagsRecoveryWithReissue != FlagsRecoveryWithReissue {
		t.Error("lab kernel lacks recovery with reissue")
	}
}

// TestOffsets sets each field to a distinct value and checks where its bytes
// land, following the offsets of research §1.4.
func TestOffsets(t *testing.T) {
	t.Run("ctrl_cmd", func(t *testing.T) {
		c := CtrlCmd{DevID: 0x11223344, QueueID: 0xffff, Len: 0x40, Addr: 0x1000, Data: 0x77, DevPathLen: 0x12}
		b := make([]byte, CtrlCmdSize)
		c.Put(b)
		check(t, b, 0, []byte{0x44, 0x33, 0x22, 0x11})
		check(t, b, 4, []byte{0xff, 0xff})
		check(t, b, 6, []byte{0x40, 0})
		check(t, b, 8, []byte{0, 0x10, 0, 0, 0, 0, 0, 0})
		check(t, b, 16, []byte{0x77})
		check(t, b, 24, []byte{0x12, 0})
		golden(t, "ctrl_cmd", b)
	})
	t.Run("dev_info", func(t *testing.T) {
		i := DevInfo{NrHWQueues: 2, QueueDepth: 128, State: StateQuiesced, MaxIOBufBytes: 512 << 10, DevID: 7,
			ServerPID: 4242, Flags: FlagsRecoveryWithReissue | FlagCmdIoctlEncode, ServerFlags: 0xabcdef, OwnerUID: 1000, OwnerGID: 100}
		b := make([]byte, DevInfoSize)
		i.Put(b)
		check(t, b, 0, []byte{2, 0, 128, 0, 2, 0})
		check(t, b, 8, []byte{0, 0, 8, 0, 7, 0, 0, 0})
		check(t, b, 16, []byte{0x92, 0x10, 0, 0})
		check(t, b, 24, []byte{0x58, 0, 0, 0, 0, 0, 0, 0})
		check(t, b, 32, []byte{0xef, 0xcd, 0xab})
		check(t, b, 40, []byte{0xe8, 0x03, 0, 0, 100, 0, 0, 0})
		golden(t, "dev_info", b)
	})
	t.Run("params", func(t *testing.T) {
		p := Params{Len: ParamsSize, Types: ParamTypeBasic | ParamTypeDiscard,
			Basic: ParamBasic{Attrs: AttrVolatileCache | AttrFUA, LogicalBSShift: 12, PhysicalBSShift: 12, IOOptShift: 12,
				IOMinShift: 12, MaxSectors: 1024, DevSectors: 1 << 21},
			Discard: ParamDiscard{DiscardGranularity: 4096, MaxDiscardSectors: 1 << 20, MaxWriteZeroesSectors: 1 << 20, MaxDiscardSegments: 1}}
		b := make([]byte, ParamsSize)
		p.Put(b)
		check(t, b, 0, []byte{64, 0, 0, 0, 3, 0, 0, 0})
		check(t, b, 8, []byte{0x0c, 0, 0, 0, 12, 12, 12, 12, 0, 4, 0, 0})
		check(t, b, 24, []byte{0, 0, 0x20, 0, 0, 0, 0, 0})
		check(t, b, 44, []byte{0, 0x10, 0, 0})
		check(t, b, 56, []byte{1, 0})
		golden(t, "params", b)
	})
	t.Run("io_desc", func(t *testing.T) {
		d := IODesc{OpFlags: uint32(OpWrite) | uint32(IOFUA|IOFailFastDev), NrSectors: 8, StartSector: 0x123456789, Addr: 0x7f0000001000}
		b := make([]byte, IODescSize)
		d.Put(b)
		check(t, b, 0, []byte{1, 0x21, 0, 0, 8, 0, 0, 0})
		check(t, b, 8, []byte{0x89, 0x67, 0x45, 0x23, 1})
		check(t, b, 16, []byte{0, 0x10, 0, 0, 0, 0x7f})
		if d.Op() != OpWrite || d.Flags() != IOFUA|IOFailFastDev {
			t.Errorf("op/flags = %v/%v", d.Op(), d.Flags())
		}
		golden(t, "io_desc", b)
	})
	t.Run("io_cmd", func(t *testing.T) {
		c := IOCmd{QueueID: 1, Tag: 0x3f, Result: -5, Addr: 0x7f0000002000}
		b := make([]byte, IOCmdSize)
		c.Put(b)
		check(t, b, 0, []byte{1, 0, 0x3f, 0, 0xfb, 0xff, 0xff, 0xff})
		check(t, b, 8, []byte{0, 0x20, 0, 0, 0, 0x7f})
		golden(t, "io_cmd", b)
	})
}

func check(t *testing.T, b []byte, off int, want []byte) {
	t.Helper()
	if !bytes.Equal(b[off:off+len(want)], want) {
		t.Errorf("bytes at %d = % x, want % x", off, b[off:off+len(want)], want)
	}
}

func TestDescMmapOffset(t *testing.T) {
	// Pitfall 1: the stride is the maximum depth's array, page rounded.
	if got := DescMmapOffset(1, 4096); got != 98304 {
		t.Errorf("4K pages: %d", got)
	}
	if got := DescMmapOffset(1, 65536); got != 131072 {
		t.Errorf("64K pages: %d", got)
	}
	if got := DescMmapLen(128, 4096); got != 4096 {
		t.Errorf("len(128) = %d", got)
	}
	if got := DescMmapLen(200, 4096); got != 8192 {
		t.Errorf("len(200) = %d", got)
	}
}

func TestShortInput(t *testing.T) {
	var de *DecodeError
	if _, err := DecodeIODesc(make([]byte, 23)); !errors.As(err, &de) || de.Need != IODescSize {
		t.Errorf("DecodeIODesc short: %v", err)
	}
	if _, err := DecodeDevInfo(nil); !errors.As(err, &de) {
		t.Errorf("DecodeDevInfo short: %v", err)
	}
	if _, err := DecodeParams(make([]byte, 7)); !errors.As(err, &de) {
		t.Errorf("DecodeParams short: %v", err)
	}
	if _, err := DecodeCtrlCmd(make([]byte, 31)); !errors.As(err, &de) {
		t.Errorf("DecodeCtrlCmd short: %v", err)
	}
	if _, err := DecodeIOCmd(make([]byte, 15)); !errors.As(err, &de) {
		t.Errorf("DecodeIOCmd short: %v", err)
	}
}

func TestDecodeIODescNoAlloc(t *testing.T) {
	b := make([]byte, IODescSize)
	if n := testing.AllocsPerRun(100, func() { _, _ = DecodeIODesc(b) }); n != 0 {
		t.Errorf("DecodeIODesc allocates %v per call", n)
	}
}

func TestStrings(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{StateFailIO.String(), "FAIL_IO"}, {DevState(9).String(), "DevState(0x9)"},
		{OpWriteZeroes.String(), "WRITE_ZEROES"}, {Op(99).String(), "Op(0x63)"},
		{(IOFUA | IOFailFastDriver).String(), "FAILFAST_DRIVER|FUA"}, {IOFlag(1 << 30).String(), "0x40000000"},
		{Flag(1 << 40).String(), "bit0x28"}, {IOOp(1).String(), "IOOp(0x1)"}, {CtrlOp(0x40).String(), "CtrlOp(0x40)"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// Fuzz targets: decode, re-encode, decode again — the round trip is stable
// and never panics.

func FuzzIODesc(f *testing.F) {
	f.Add(make([]byte, IODescSize))
	f.Add([]byte{1, 0x21, 0, 0, 8, 0, 0, 0, 0x89, 0x67, 0x45, 0x23, 1, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x7f, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeIODesc(b)
		if err != nil {
			return
		}
		out := make([]byte, IODescSize)
		d.Put(out)
		if !bytes.Equal(out, b[:IODescSize]) {
			t.Fatalf("round trip: % x != % x", out, b[:IODescSize])
		}
		_ = d.Op().String() + d.Flags().String()
	})
}

func FuzzDevInfo(f *testing.F) {
	f.Add(make([]byte, DevInfoSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		i, err := DecodeDevInfo(b)
		if err != nil {
			return
		}
		out := make([]byte, DevInfoSize)
		i.Put(out)
		if !bytes.Equal(out, b[:DevInfoSize]) {
			t.Fatalf("round trip: % x != % x", out, b[:DevInfoSize])
		}
		_ = i.State.String() + i.Flags.String()
	})
}

func FuzzParams(f *testing.F) {
	f.Add(make([]byte, ParamsMaxSize))
	f.Add(make([]byte, ParamsSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeParams(b)
		if err != nil {
			return
		}
		n := min(len(b), paramsDevtOff+ParamDevtSize)
		out := make([]byte, n)
		p.Put(out)
		// Put writes only whole sub-structs that fit; compare those bytes.
		covered := 8
		for _, end := range []int{paramsBasicOff + ParamBasicSize, paramsDiscardOff + ParamDiscardSize, paramsDevtOff + ParamDevtSize} {
			if n >= end {
				covered = end
			}
		}
		if !bytes.Equal(out[:covered], b[:covered]) {
			t.Fatalf("round trip: % x != % x", out[:covered], b[:covered])
		}
	})
}

func FuzzCmds(f *testing.F) {
	f.Add(make([]byte, CtrlCmdSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := DecodeCtrlCmd(b); err == nil {
			out := make([]byte, CtrlCmdSize)
			c.Put(out)
			if !bytes.Equal(out, b[:CtrlCmdSize]) {
				t.Fatalf("ctrl round trip")
			}
		}
		if c, err := DecodeIOCmd(b); err == nil {
			out := make([]byte, IOCmdSize)
			c.Put(out)
			if !bytes.Equal(out, b[:IOCmdSize]) {
				t.Fatalf("io round trip")
			}
		}
	})
}
