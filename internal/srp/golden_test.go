package srp

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// readHex reads a testdata hex file: '#' starts a comment, whitespace is
// ignored.
func readHex(t testing.TB, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for line := range strings.Lines(string(raw)) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		sb.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

func golden(t testing.TB, name string) []byte {
	t.Helper()
	return readHex(t, filepath.Join("testdata", "golden", name+".hex"))
}

// Values shared by the §5 vectors.
var (
	vecInitiator = InitiatorPortID{Ext: 0xfe80000000000000, GUID: 0x505400fffe123456}
	vecTarget    = TargetPortID{IDExt: 0x505400fffe654321, IOCGUID: 0x505400fffe654321}
	vecSense     = []byte{0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0}
	vecLUN1      = LUNFromInt(1)
)

func pad16(b ...byte) []byte { return append(b, make([]byte, CDBLen-len(b))...) }

var cmpOpts = []cmp.Option{cmpopts.EquateEmpty()}

// goldenCase is one §5 vector: decode the file into a fresh value of the
// same type as want, compare, then re-encode and compare the bytes.
type goldenCase struct {
	name string
	want IU
}

func goldenCases() []goldenCase {
	return []goldenCase{
		{"login_req", &LoginReq{
			Tag: 0, ReqITIULen: 8260, ReqBufFmt: BufFormatDirect | BufFormatIndirect,
			ReqFlags:      MakeLoginReqFlags(MultiChanSingle, true),
			ImmDataOffset: DefaultImmDataOffset, InitiatorPortID: vecInitiator, TargetPortID: vecTarget,
		}},
		{"login_rsp", &LoginRsp{
			ReqLimDelta: 128, MaxITIULen: 8276, MaxTIIULen: 8260,
			BufFmt: BufFormatDirect | BufFormatIndirect, RspFlags: LoginRspImmedSupported,
		}},
		{"login_rej", &LoginRej{Reason: RejReqITIULengthTooLarge, BufFmt: BufFormatDirect | BufFormatIndirect}},
		{"cmd_read_direct", &Cmd{
			Tag: 7, LUN: vecLUN1,
			CDB:    pad16(0x28, 0, 0, 0, 0, 0x10, 0, 0, 0x08, 0),
			DataIn: DataDesc{Format: DescDirect, Direct: DirectBuf{Addr: 0x7f0000001000, Key: 0x1234, Len: 4096}},
		}},
		{"cmd_write_indirect", &Cmd{
			Tag: 9, LUN: vecLUN1,
			CDB: pad16(0x2a, 0, 0, 0, 0, 0x30, 0, 0, 0x02, 0),
			DataOut: DataDesc{Format: DescIndirect, Count: 2, Indirect: IndirectBuf{
				Table: DirectBuf{Addr: 0x7f0000009000, Key: 0x5678, Len: 32},
				Len:   1024,
				Descs: []DirectBuf{
					{Addr: 0x7f0000002000, Key: 0x1234, Len: 512},
					{Addr: 0x7f0000004000, Key: 0x1234, Len: 512},
				},
			}},
		}},
		{"tsk_mgmt_abort", &TskMgmt{Tag: 0x80000001, LUN: vecLUN1, Func: TMAbortTask, TaskTag: 7}},
		{"rsp_good", &Rsp{ReqLimDelta: 1, Tag: 7}},
		{"rsp_check_condition", &Rsp{ReqLimDelta: 1, Tag: 7, Flags: SnsValid, Status: 0x02, Sense: vecSense}},
		{"rsp_tsk_mgmt", &Rsp{ReqLimDelta: 1, Tag: TagTskMgmt | 1, Flags: RspValid, RespData: []byte{0, 0, 0, 0}}},
		{"rsp_diunder", &Rsp{ReqLimDelta: 1, Tag: 7, Flags: DataInUnder, DataInResid: 3584}},
		{"cred_req", &CredReq{ReqLimDelta: 5, Tag: 0x11}},
		{"cred_rsp", &CredRsp{Tag: 0x11}},
		{"aer_req", &AerReq{Tag: 0x12, LUN: vecLUN1, Sense: vecSense}},
		{"aer_rsp", &AerRsp{Tag: 0x12}},
		{"i_logout", &ILogout{Tag: 0x13}},
		{"t_logout", &TLogout{Tag: 0x14}},
	}
}

// newLike returns a new zero value of the same IU type as iu.
func newLike(iu IU) IU {
	switch iu.(type) {
	case *LoginReq:
		return new(LoginReq)
	case *LoginRsp:
		return new(LoginRsp)
	case *LoginRej:
		return new(LoginRej)
	case *ILogout:
		return new(ILogout)
	case *TLogout:
		return new(TLogout)
	case *TskMgmt:
		return new(TskMgmt)
	case *Cmd:
		return new(Cmd)
	case *Rsp:
		return new(Rsp)
	case *CredReq:
		return new(CredReq)
	case *CredRsp:
		return new(CredRsp)
	case *AerReq:
		return new(AerReq)
	case *AerRsp:
		return new(AerRsp)
	}
	panic("unknown IU type")
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			b := golden(t, tc.name)
			got := newLike(tc.want)
			if err := got.Decode(b); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmpOpts...); diff != "" {
				t.Fatalf("decoded value differs (-want +got):\n%s", diff)
			}
			if op, err := PeekOpcode(b); err != nil || op != tc.want.Opcode() {
				t.Errorf("PeekOpcode = %v, %v; want %v", op, err, tc.want.Opcode())
			}
			if got.Len() != len(b) {
				t.Errorf("Len() = %d, want %d", got.Len(), len(b))
			}
			enc, err := tc.want.AppendTo(nil)
			if err != nil {
				t.Fatalf("AppendTo: %v", err)
			}
			if !bytes.Equal(enc, b) {
				t.Fatalf("encoding differs:\n got %x\nwant %x", enc, b)
			}
			// Encode into a dirty buffer: reserved bytes must still be 0.
			dirty := bytes.Repeat([]byte{0xff}, len(b)+8)
			n, err := tc.want.Encode(dirty)
			if err != nil || n != len(b) || !bytes.Equal(dirty[:n], b) {
				t.Fatalf("Encode into dirty buffer = %d, %v:\n got %x\nwant %x", n, err, dirty[:n], b)
			}
			// Decoders accept trailing bytes (receive buffers are larger).
			again := newLike(tc.want)
			if err := again.Decode(append(bytes.Clone(b), 0xee, 0xee)); err != nil {
				t.Fatalf("Decode with trailing bytes: %v", err)
			}
			if diff := cmp.Diff(tc.want, again, cmpOpts...); diff != "" {
				t.Fatalf("decoded value with trailing bytes differs:\n%s", diff)
			}
		})
	}
}

func TestGoldenLoginReqRDMA(t *testing.T) {
	b := golden(t, "login_req_rdma")
	want := goldenCases()[0].want.(*LoginReq)
	var got LoginReq
	if err := got.DecodeRDMA(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, &got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	enc, err := want.AppendRDMATo(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, b) {
		t.Fatalf("encoding differs:\n got %x\nwant %x", enc, b)
	}
	// The same request in the IB CM form is vector 1.
	ib, err := want.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ib, golden(t, "login_req")) {
		t.Fatalf("IB CM form differs: %x", ib)
	}
}

func TestGoldenCmdImm(t *testing.T) {
	b := golden(t, "cmd_write_imm")
	data := make([]byte, 512)
	for i := range data {
		data[i] = byte(i)
	}
	want := &Cmd{
		Tag: 8, LUN: vecLUN1,
		CDB:     pad16(0x2a, 0, 0, 0, 0, 0x20, 0, 0, 0x01, 0),
		DataOut: DataDesc{Format: DescImm, ImmLen: 512},
	}
	var got Cmd
	if err := got.Decode(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, &got, cmpOpts...); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	imm, err := got.ImmData(b, DefaultImmDataOffset)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(imm, data) {
		t.Fatalf("ImmData = %x", imm)
	}
	enc, err := want.AppendImmTo(nil, DefaultImmDataOffset, data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, b) {
		t.Fatalf("encoding differs:\n got %x\nwant %x", enc, b)
	}
	// Header only, for a sender that posts the data as a second SGE.
	hdr := bytes.Repeat([]byte{0xff}, 100)
	n, err := want.EncodeImm(hdr, DefaultImmDataOffset, nil)
	if err != nil || n != DefaultImmDataOffset || !bytes.Equal(hdr[:n], b[:DefaultImmDataOffset]) {
		t.Fatalf("EncodeImm(nil data) = %d, %v: %x", n, err, hdr[:n])
	}
}
