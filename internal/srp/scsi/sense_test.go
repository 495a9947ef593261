package scsi

import (
	"errors"
	"testing"
)

func TestParseSenseGolden(t *testing.T) {
	cases := []struct {
		file string
		want Sense
		str  string
		// canonical: Append reproduces the file byte for byte.
		canonical bool
	}{
		{"sense_fixed_medium.hex", Sense{ResponseCode: 0x70, Key: KeyMediumError, ASC: 0x11,
			InfoValid: true, Information: 0x1234},
			"MEDIUM ERROR (0x11/0x00 unrecovered read error)", true},
		{"sense_fixed_illegal.hex", Sense{ResponseCode: 0x70, Key: KeyIllegalRequest, ASC: 0x24},
			"ILLEGAL REQUEST (0x24/0x00 invalid field in cdb)", true},
		{"sense_fixed_sks.hex", Sense{ResponseCode: 0x70, Key: KeyIllegalRequest, ASC: 0x24,
			SKSValid: true, SenseKeySpecific: [3]byte{0x40, 0x00, 0x02}},
			"ILLEGAL REQUEST (0x24/0x00 invalid field in cdb)", true},
		{"sense_fixed_ua_reset.hex", Sense{ResponseCode: 0x70, Key: KeyUnitAttention, ASC: 0x29},
			"UNIT ATTENTION (0x29/0x00 power on, reset, or bus device reset occurred)", true},
		{"sense_fixed_deferred.hex", Sense{ResponseCode: 0x71, Key: KeyMediumError, ASC: 0x0C},
			"MEDIUM ERROR (0x0c/0x00 write error) deferred", true},
		{"sense_fixed_short.hex", Sense{ResponseCode: 0x70, Key: KeyNotReady},
			"NOT READY (0x00/0x00 no additional sense information)", false},
		{"sense_desc_alua.hex", Sense{ResponseCode: 0x72, Key: KeyNotReady, ASC: 0x04, ASCQ: 0x0A},
			"NOT READY (0x04/0x0a logical unit not accessible, asymmetric access state transition)", true},
		{"sense_desc_info.hex", Sense{ResponseCode: 0x72, Key: KeyMediumError, ASC: 0x11,
			InfoValid: true, Information: 1 << 32},
			"MEDIUM ERROR (0x11/0x00 unrecovered read error)", true},
		{"sense_desc_full.hex", Sense{ResponseCode: 0x72, Key: KeyAbortedCommand, ASC: 0x47,
			InfoValid: true, Information: 0xdeadbeef, CommandSpecific: 0x42,
			SKSValid: true, SenseKeySpecific: [3]byte{0, 1, 2}, FRU: 5, ILI: true},
			"ABORTED COMMAND (0x47/0x00 scsi parity error)", true},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			b := golden(t, tc.file)
			got, err := ParseSense(b)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("ParseSense:\n got %+v\nwant %+v", got, tc.want)
			}
			if s := got.String(); s != tc.str {
				t.Errorf("String() = %q, want %q", s, tc.str)
			}
			if tc.canonical {
				mustEqualBytes(t, "Append", got.Append(nil), b)
			}
		})
	}
}

func TestParseSenseErrors(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"fixed two bytes", []byte{0x70, 0}, ErrShort},
		{"descriptor three bytes", []byte{0x72, 2, 4}, ErrShort},
		{"vendor response code", []byte{0x7F, 0, 0, 0, 0, 0, 0, 0}, ErrFormat},
		{"old-style sense", []byte{0x04, 0, 0, 0}, ErrFormat},
		// Additional length 4 announces 12 bytes; the descriptor claims 10
		// more after its header: corrupt, not truncated.
		{"descriptor overruns announced length", []byte{0x72, 3, 0x11, 0, 0, 0, 0, 4, 0, 0x0a, 0x80, 0}, ErrFormat},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSense(tc.b)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("%T is not a *DecodeError", err)
			}
		})
	}
}

// A descriptor list cut by the transport's sense buffer (ib_srp keeps 96
// bytes) keeps the complete descriptors.
func TestParseSenseTruncatedDescriptors(t *testing.T) {
	b := golden(t, "sense_desc_full.hex")
	cut := b[:8+12+6] // information descriptor whole, command-specific cut
	got, err := ParseSense(cut)
	if err != nil {
		t.Fatal(err)
	}
	if !got.InfoValid || got.Information != 0xdeadbeef || got.CommandSpecific != 0 {
		t.Errorf("got %+v", got)
	}
}

// Fixed sense honours the additional length: bytes beyond it are not ASC.
func TestParseSenseFixedAdditionalLength(t *testing.T) {
	b := golden(t, "sense_fixed_illegal.hex")
	b[7] = 4 // only through byte 11: no ASC/ASCQ
	got, err := ParseSense(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.ASC != 0 || got.Key != KeyIllegalRequest {
		t.Errorf("got %+v", got)
	}
}

func TestSenseAppendFixedLargeInformation(t *testing.T) {
	s := Sense{ResponseCode: SenseFixedCurrent, Key: KeyMediumError, ASC: 0x11, InfoValid: true, Information: 1 << 40}
	got, err := ParseSense(s.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got.InfoValid || got.Information != 0 {
		t.Errorf("a 40-bit LBA in fixed sense must leave VALID clear, got %+v", got)
	}
	s.ResponseCode = SenseDescriptorCurrent
	got, err = ParseSense(s.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !got.InfoValid || got.Information != 1<<40 {
		t.Errorf("descriptor format carries 64 bits, got %+v", got)
	}
}

func TestSenseAppendNoAlloc(t *testing.T) {
	s := Sense{ResponseCode: SenseDescriptorCurrent, Key: KeyMediumError, ASC: 0x11, InfoValid: true, Information: 7,
		SKSValid: true, CommandSpecific: 1, FRU: 1, EOM: true}
	buf := make([]byte, 0, 96)
	f := Sense{Key: KeyNotReady, ASC: 4, ASCQ: 1}
	if n := testing.AllocsPerRun(100, func() {
		buf = s.Append(buf[:0])
		buf = f.Append(buf[:0])
	}); n != 0 {
		t.Errorf("Append allocates %.1f times", n)
	}
}
