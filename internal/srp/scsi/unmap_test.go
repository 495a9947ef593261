package scsi

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUnmapParamsGolden(t *testing.T) {
	b := golden(t, "unmap_params.hex")
	want := []Extent{{LBA: 0x1000, Blocks: 0x800}, {LBA: 1 << 32, Blocks: 1}}
	mustEqualBytes(t, "AppendUnmapParams", AppendUnmapParams(nil, want), b)
	got, err := ParseUnmapParams(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	// The UNMAP CDB names the list's length.
	var c CDB
	Unmap(&c, uint16(len(b)), false)
	if c[7] != 0 || c[8] != byte(len(b)) {
		t.Errorf("parameter list length in CDB: % x", c[7:9])
	}
	if _, err := ParseUnmapParams(b[:30]); !errors.Is(err, ErrShort) {
		t.Errorf("cut list: err = %v, want ErrShort", err)
	}
	odd := append([]byte(nil), b...)
	odd[3] = 0x1F
	if _, err := ParseUnmapParams(odd); !errors.Is(err, ErrFormat) {
		t.Errorf("descriptor length 31: err = %v, want ErrFormat", err)
	}
}

func TestUnmapParamsCap(t *testing.T) {
	many := make([]Extent, MaxUnmapDescriptors+10)
	b := AppendUnmapParams(nil, many)
	got, err := ParseUnmapParams(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxUnmapDescriptors || len(b) > 0xFFFF {
		t.Errorf("%d descriptors in %d bytes", len(got), len(b))
	}
}
