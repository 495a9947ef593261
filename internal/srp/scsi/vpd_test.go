package scsi

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSupportedPagesGolden(t *testing.T) {
	b := golden(t, "vpd00_lio.hex")
	got, err := ParseSupportedPages(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []PageCode{PageSupported, PageUnitSerial, PageDeviceID, 0x86, PageBlockLimits, PageBlockDevChars, PageLBProvisioning}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	mustEqualBytes(t, "Append", AppendSupportedPages(nil, got), b)
	var de *DecodeError
	if _, err := ParseSupportedPages(b[:6]); !errors.Is(err, ErrTruncated) || !errors.As(err, &de) || de.Need != len(b) {
		t.Errorf("truncated: err = %v, want ErrTruncated needing %d", err, len(b))
	}
	if _, err := ParseSupportedPages(golden(t, "vpd80_lio.hex")); !errors.Is(err, ErrPageCode) {
		t.Errorf("page 0x80 as 0x00: err = %v, want ErrPageCode", err)
	}
}

func TestUnitSerialGolden(t *testing.T) {
	b := golden(t, "vpd80_lio.hex")
	got, err := ParseUnitSerial(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != "e3b0a9d5-3c35-4d43-9e0b-2c3a1d5f8e77" {
		t.Errorf("serial %q", got)
	}
	mustEqualBytes(t, "Append", AppendUnitSerial(nil, got), b)
	padded := AppendUnitSerial(nil, "  ABC123   \x00")
	if s, err := ParseUnitSerial(padded); err != nil || s != "ABC123" {
		t.Errorf("padded serial: %q, %v", s, err)
	}
}

func TestBlockLimitsGolden(t *testing.T) {
	b := golden(t, "vpdb0.hex")
	got, err := ParseBlockLimits(b)
	if err != nil {
		t.Fatal(err)
	}
	want := BlockLimits{
		WriteSameNonZero: true, MaxCompareAndWrite: 1, OptimalTransferGranularity: 8,
		MaxTransferLength: 0x2000, OptimalTransferLength: 0x400,
		MaxUnmapLBACount: 0x400000, MaxUnmapDescriptorCount: 1, OptimalUnmapGranularity: 8,
		UnmapGranularityAlignValid: true, MaxWriteSameLength: 0x400000,
	}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	mustEqualBytes(t, "Append", got.Append(nil), b)

	short, err := ParseBlockLimits(golden(t, "vpdb0_short.hex"))
	if err != nil {
		t.Fatal(err)
	}
	if (short != BlockLimits{MaxTransferLength: 0x800, OptimalTransferLength: 0x80}) {
		t.Errorf("short page: %+v", short)
	}
}

func TestLBProvisioningGolden(t *testing.T) {
	b := golden(t, "vpdb2_lio.hex")
	got, err := ParseLBProvisioning(b)
	if err != nil {
		t.Fatal(err)
	}
	want := LBProvisioning{LBPU: true, LBPWS: true, LBPWS10: true, LBPRZ: 1, Type: ProvisioningThin}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	mustEqualBytes(t, "Append", got.Append(nil), b)
	if _, err := ParseLBProvisioning(b[:6]); !errors.Is(err, ErrShort) {
		t.Errorf("6 bytes: err = %v, want ErrShort", err)
	}
}
