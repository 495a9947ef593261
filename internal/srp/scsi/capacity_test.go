package scsi

import (
	"errors"
	"math"
	"testing"
)

func TestReadCapacity16Golden(t *testing.T) {
	b := golden(t, "readcap16.hex")
	got, err := ParseReadCapacity16(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Capacity{Blocks: 0x800000, BlockSize: 512, PhysicalBlockExponent: 3, LBPME: true, LBPRZ: true}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if n, ok := got.Bytes(); !ok || n != 4<<30 {
		t.Errorf("Bytes() = %d, %v; want 4 GiB", n, ok)
	}
	if p := got.PhysicalBlockSize(); p != 4096 {
		t.Errorf("PhysicalBlockSize() = %d, want 4096", p)
	}
	mustEqualBytes(t, "Append", got.Append(nil), b)
}

func TestReadCapacity16Edges(t *testing.T) {
	b := golden(t, "readcap16.hex")
	if _, err := ParseReadCapacity16(b[:15]); !errors.Is(err, ErrShort) {
		t.Errorf("15 bytes: err = %v, want ErrShort", err)
	}
	if _, err := ParseReadCapacity16(b[:16]); err != nil {
		t.Errorf("16 bytes: %v", err)
	}
	c := append([]byte(nil), b...)
	for i := range 8 {
		c[i] = 0xFF
	}
	if _, err := ParseReadCapacity16(c); !errors.Is(err, ErrFormat) {
		t.Errorf("last LBA 2^64-1: err = %v, want ErrFormat", err)
	}
	huge := Capacity{Blocks: math.MaxUint64, BlockSize: 512}
	if _, ok := huge.Bytes(); ok {
		t.Error("Bytes() did not report overflow")
	}
	prot := Capacity{Blocks: 1, BlockSize: 4096, ProtectionEnabled: true, ProtectionType: 1, PIExponent: 2, LowestAlignedLBA: 7}
	got, err := ParseReadCapacity16(prot.Append(nil))
	if err != nil || got != prot {
		t.Errorf("round trip %+v → %+v, %v", prot, got, err)
	}
}
