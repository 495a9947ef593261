package scsi

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReportLUNsGolden(t *testing.T) {
	b := golden(t, "reportluns.hex")
	luns, err := ParseReportLUNs(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		n      uint64
		method AddressMethod
		wk     bool
	}{
		{0, AddrPeripheral, false},
		{1, AddrPeripheral, false},
		{300, AddrFlat, false},
		{20000, AddrExtended, false},
		{0, AddrExtended, true},
	}
	if len(luns) != len(want) {
		t.Fatalf("%d LUNs, want %d", len(luns), len(want))
	}
	for i, w := range want {
		l := luns[i]
		if l.Method() != w.method || l.IsWellKnown() != w.wk {
			t.Errorf("LUN %d (% x): method %v wk %v", i, l[:], l.Method(), l.IsWellKnown())
		}
		if w.wk {
			if _, err := l.Number(); !errors.Is(err, ErrUnsupported) {
				t.Errorf("well-known LUN number: err = %v", err)
			}
			if l.String() != "0xc101000000000000" {
				t.Errorf("String() = %q", l.String())
			}
			continue
		}
		n, err := l.Number()
		if err != nil || n != w.n {
			t.Errorf("LUN %d: Number() = %d, %v; want %d", i, n, err, w.n)
		}
		enc, err := EncodeLUN(w.n)
		if err != nil || enc != l {
			t.Errorf("EncodeLUN(%d) = % x, %v; want % x", w.n, enc[:], err, l[:])
		}
	}
	mustEqualBytes(t, "Append", AppendReportLUNs(nil, luns), b)

	var de *DecodeError
	if _, err := ParseReportLUNs(b[:20]); !errors.Is(err, ErrTruncated) || !errors.As(err, &de) || de.Need != len(b) {
		t.Errorf("truncated: err = %v, want ErrTruncated needing %d", err, len(b))
	}
	if _, err := ParseReportLUNs(b[:7]); !errors.Is(err, ErrShort) {
		t.Errorf("7 bytes: err = %v, want ErrShort", err)
	}
	odd := append([]byte(nil), b...)
	odd[3] = 0x27
	if _, err := ParseReportLUNs(odd); !errors.Is(err, ErrFormat) {
		t.Errorf("list length not a multiple of 8: err = %v, want ErrFormat", err)
	}
}

func TestLUNEncodings(t *testing.T) {
	cases := []struct {
		n   uint64
		raw LUN
	}{
		{0, LUN{}},
		{255, LUN{0x00, 0xFF}},
		{256, LUN{0x41, 0x00}},
		{0x3FFF, LUN{0x7F, 0xFF}},
		{0x4000, LUN{0xD2, 0x00, 0x40, 0x00}},
		{0xFFFFFF, LUN{0xD2, 0xFF, 0xFF, 0xFF}},
		{0x1000000, LUN{0xE2, 0x00, 0x01, 0x00, 0x00, 0x00}},
		{0xFF_FFFF_FFFF, LUN{0xE2, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}},
	}
	for _, tc := range cases {
		got, err := EncodeLUN(tc.n)
		if err != nil || got != tc.raw {
			t.Errorf("EncodeLUN(%d) = % x, %v; want % x", tc.n, got[:], err, tc.raw[:])
		}
		n, err := tc.raw.Number()
		if err != nil || n != tc.n {
			t.Errorf("Number(% x) = %d, %v; want %d", tc.raw[:], n, err, tc.n)
		}
	}
	if _, err := EncodeLUN(1 << 40); !errors.Is(err, ErrRange) {
		t.Errorf("EncodeLUN(2^40): err = %v, want ErrRange", err)
	}
	// Logical unit addressing (10b) with target 0, bus 0, LUN 5.
	if n, err := (LUN{0x80, 0x05}).Number(); err != nil || n != 5 {
		t.Errorf("logical unit addressing: %d, %v", n, err)
	}
	unsupported := []LUN{
		{0x01, 0x05},             // peripheral with bus id 1: a second level
		{0x00, 0x01, 0x00, 0x02}, // two-level peripheral
		{0x81, 0x05},             // logical unit addressing, target 1
		{0xC1, 0x01},             // well-known
		{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, // not specified
		{0xD2, 0, 0, 1, 0, 0, 0, 5},                      // extended, then a second level
	}
	for _, l := range unsupported {
		if _, err := l.Number(); !errors.Is(err, ErrUnsupported) {
			t.Errorf("Number(% x): err = %v, want ErrUnsupported", l[:], err)
		}
	}
	if s := (LUN{0x41, 0x2c}).String(); s != "300" {
		t.Errorf("String() = %q", s)
	}
}

func TestReportLUNsEmpty(t *testing.T) {
	luns, err := ParseReportLUNs(AppendReportLUNs(nil, nil))
	if err != nil || len(luns) != 0 {
		t.Errorf("%v, %v", luns, err)
	}
	if diff := cmp.Diff(make([]byte, 8), AppendReportLUNs(nil, nil)); diff != "" {
		t.Error(diff)
	}
}
