package scsi

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestModeSense10CachingGolden(t *testing.T) {
	b := golden(t, "modesense10_caching.hex")
	m, err := ParseModeSense10(b)
	if err != nil {
		t.Fatal(err)
	}
	if !m.DPOFUA || m.WriteProtect || len(m.BlockDescriptors) != 0 || len(m.Pages) != 1 {
		t.Errorf("%+v", m)
	}
	c, err := m.Caching()
	if err != nil {
		t.Fatal(err)
	}
	if (c != Caching{WCE: true}) {
		t.Errorf("caching %+v, want WCE only", c)
	}
	mustEqualBytes(t, "Append", m.Append(nil), b)

	var de *DecodeError
	if _, err := ParseModeSense10(b[:16]); !errors.Is(err, ErrTruncated) || !errors.As(err, &de) || de.Need != len(b) {
		t.Errorf("truncated: err = %v, want ErrTruncated needing %d", err, len(b))
	}
}

func TestModeSense10BlockDescriptorGolden(t *testing.T) {
	b := golden(t, "modesense10_bd.hex")
	m, err := ParseModeSense10(b)
	if err != nil {
		t.Fatal(err)
	}
	want := ModeParams{
		WriteProtect:     true,
		BlockDescriptors: []byte{0, 0, 0, 0, 0, 0, 2, 0},
		Pages: []ModePage{
			{Code: ModePageCaching, Data: append([]byte{0x01}, make([]byte, 17)...)},
			{Code: 0x0A, Subpage: 1, SPF: true, Data: []byte{1, 2, 3, 4}},
		},
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	c, err := m.Caching()
	if err != nil || (c != Caching{RCD: true}) {
		t.Errorf("caching %+v, %v", c, err)
	}
	if _, ok := m.Page(0x0A, 1); !ok {
		t.Error("control subpage 1 not found")
	}
	mustEqualBytes(t, "Append", m.Append(nil), b)
}

func TestModeSense10Errors(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"short header", []byte{0, 6, 0, 0}, ErrShort},
		{"length below header", []byte{0, 2, 0, 0, 0, 0, 0, 0}, ErrFormat},
		{"block descriptors past the data", []byte{0, 6, 0, 0, 0, 0, 0, 8}, ErrFormat},
		{"page past the data", []byte{0, 8, 0, 0, 0, 0, 0, 0, 0x08, 0x12}, ErrFormat},
		{"page header cut", []byte{0, 7, 0, 0, 0, 0, 0, 0, 0x08}, ErrFormat},
		{"subpage header cut", []byte{0, 8, 0, 0, 0, 0, 0, 0, 0x4A, 0x01}, ErrFormat},
	}
	for _, tc := range cases {
		if _, err := ParseModeSense10(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	empty := ModeParams{}
	if _, err := empty.Caching(); !errors.Is(err, ErrPageCode) {
		t.Errorf("no caching page: err = %v, want ErrPageCode", err)
	}
}

// A target (the project's software SRP target) answers MODE SENSE from
// Caching.Page; the initiator reads back what it set.
func TestCachingPageRoundTrip(t *testing.T) {
	for _, c := range []Caching{{}, {WCE: true}, {RCD: true}, {WCE: true, RCD: true}} {
		m := ModeParams{DPOFUA: true, Pages: []ModePage{c.Page()}}
		back, err := ParseModeSense10(m.Append(nil))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(m, back, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("(-sent +parsed)\n%s", diff)
		}
		got, err := back.Caching()
		if err != nil || got != c {
			t.Errorf("%+v → %+v, %v", c, got, err)
		}
	}
}
