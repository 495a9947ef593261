package scsi

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Every decoder: never panics; on error returns a *DecodeError; where an
// encoder exists, decode(encode(decode(b))) == decode(b).

func seed(f *testing.F, files ...string) {
	for _, name := range files {
		f.Add(golden(f, name))
	}
}

func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
	}
}

func roundTrip[T any](t *testing.T, first T, enc []byte, parse func([]byte) (T, error)) {
	t.Helper()
	second, err := parse(enc)
	if err != nil {
		t.Fatalf("re-decoding the encoding of %+v: %v (% x)", first, err, enc)
	}
	if diff := cmp.Diff(first, second, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("round trip changed the value (-first +second):\n%s\nencoding % x", diff, enc)
	}
}

func FuzzSense(f *testing.F) {
	seed(f, "sense_fixed_medium.hex", "sense_fixed_illegal.hex", "sense_fixed_sks.hex", "sense_fixed_ua_reset.hex",
		"sense_fixed_deferred.hex", "sense_fixed_short.hex", "sense_desc_alua.hex", "sense_desc_info.hex", "sense_desc_full.hex")
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSense(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		_ = s.String()
		roundTrip(t, s, s.Append(nil), ParseSense)
		// Classify reads the same key, ASC and ASCQ.
		d := Classify(StatusCheckCondition, b)
		if !d.SenseValid || d.Key != s.Key || d.ASC != s.ASC || d.ASCQ != s.ASCQ {
			t.Fatalf("Classify saw %+v, ParseSense %+v", d, s)
		}
	})
}

func FuzzClassify(f *testing.F) {
	for _, name := range []string{"sense_fixed_medium.hex", "sense_desc_alua.hex", "sense_fixed_deferred.hex", "sense_desc_full.hex"} {
		f.Add(byte(StatusCheckCondition), golden(f, name))
	}
	f.Add(byte(StatusBusy), []byte(nil))
	f.Add(byte(StatusGood), []byte{0x70})
	f.Fuzz(func(t *testing.T, status byte, sense []byte) {
		d := Classify(Status(status), sense)
		if d.Reason == "" {
			t.Fatalf("no reason: %+v", d)
		}
		if (d.Action == ActionOK) != (d.Class == ClassNone) {
			t.Fatalf("class/action mismatch: %+v", d)
		}
		if d.Action > ActionFail {
			t.Fatalf("unknown action: %+v", d)
		}
		if d.SenseValid && Status(status) != StatusCheckCondition && Status(status) != statusCommandTerminated {
			t.Fatalf("sense used for status %v: %+v", Status(status), d)
		}
		_ = d.String()
	})
}

func FuzzInquiry(f *testing.F) {
	seed(f, "inquiry_lio.hex", "inquiry_no_lu.hex")
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseInquiry(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		roundTrip(t, d, d.Append(nil), ParseInquiry)
	})
}

func FuzzSupportedPages(f *testing.F) {
	seed(f, "vpd00_lio.hex")
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseSupportedPages(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		roundTrip(t, p, AppendSupportedPages(nil, p), ParseSupportedPages)
	})
}

func FuzzUnitSerial(f *testing.F) {
	seed(f, "vpd80_lio.hex")
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseUnitSerial(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		roundTrip(t, s, AppendUnitSerial(nil, s), ParseUnitSerial)
	})
}

func FuzzDeviceID(f *testing.F) {
	seed(f, "vpd83_lio.hex")
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDeviceID(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		enc := d.Append(nil)
		roundTrip(t, d, enc, ParseDeviceID)
		w1, err1 := d.WWID()
		back, _ := ParseDeviceID(enc)
		w2, err2 := back.WWID()
		if w1 != w2 || (err1 == nil) != (err2 == nil) {
			t.Fatalf("WWID changed over a round trip: %q/%v → %q/%v", w1, err1, w2, err2)
		}
		if err1 == nil && len(w1) < 2 {
			t.Fatalf("WWID %q has no identifier", w1)
		}
		for i := range d.Designators {
			_ = d.Designators[i].Check()
			_ = d.Designators[i].String()
		}
	})
}

func FuzzBlockLimits(f *testing.F) {
	seed(f, "vpdb0.hex", "vpdb0_short.hex")
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseBlockLimits(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		roundTrip(t, l, l.Append(nil), ParseBlockLimits)
	})
}

func FuzzLBProvisioning(f *testing.F) {
	seed(f, "vpdb2_lio.hex")
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLBProvisioning(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		roundTrip(t, l, l.Append(nil), ParseLBProvisioning)
	})
}

func FuzzReadCapacity16(f *testing.F) {
	seed(f, "readcap16.hex")
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseReadCapacity16(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if c.Blocks == 0 {
			t.Fatal("zero blocks decoded: last LBA + 1 overflowed")
		}
		_, _ = c.Bytes()
		_ = c.PhysicalBlockSize()
		roundTrip(t, c, c.Append(nil), ParseReadCapacity16)
	})
}

func FuzzReportLUNs(f *testing.F) {
	seed(f, "reportluns.hex")
	f.Fuzz(func(t *testing.T, b []byte) {
		luns, err := ParseReportLUNs(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		roundTrip(t, luns, AppendReportLUNs(nil, luns), ParseReportLUNs)
		for _, l := range luns {
			checkLUN(t, l)
		}
	})
}

// checkLUN: a LUN that decodes to a number encodes to a LUN that decodes to
// the same number (the encoding may differ: targets may use a wider method).
func checkLUN(t *testing.T, l LUN) {
	t.Helper()
	_ = l.String()
	n, err := l.Number()
	if err != nil {
		checkDecodeError(t, err)
		return
	}
	enc, err := EncodeLUN(n)
	if err != nil {
		t.Fatalf("LUN % x decodes to %d, which does not encode: %v", l[:], n, err)
	}
	if m, err := enc.Number(); err != nil || m != n {
		t.Fatalf("EncodeLUN(%d) = % x decodes to %d, %v", n, enc[:], m, err)
	}
}

func FuzzLUN(f *testing.F) {
	for _, l := range []LUN{{}, {0x41, 0x2c}, {0xD2, 0, 0x4e, 0x20}, {0xE2, 1, 2, 3, 4, 5}, {0xC1, 1}, {0x80, 5}} {
		f.Add(l[:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var l LUN
		copy(l[:], b)
		checkLUN(t, l)
	})
}

func FuzzModeSense10(f *testing.F) {
	seed(f, "modesense10_caching.hex", "modesense10_bd.hex")
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseModeSense10(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		roundTrip(t, m, m.Append(nil), ParseModeSense10)
		if c, err := m.Caching(); err == nil {
			// The caching bits survive re-encoding the page alone.
			back := ModeParams{Pages: []ModePage{c.Page()}}
			if c2, err := back.Caching(); err != nil || c2 != c {
				t.Fatalf("caching %+v → %+v, %v", c, c2, err)
			}
		} else {
			checkDecodeError(t, err)
		}
	})
}

func FuzzUnmapParams(f *testing.F) {
	seed(f, "unmap_params.hex")
	f.Fuzz(func(t *testing.T, b []byte) {
		ext, err := ParseUnmapParams(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		roundTrip(t, ext, AppendUnmapParams(nil, ext), ParseUnmapParams)
	})
}
