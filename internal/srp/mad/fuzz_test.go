package mad

import (
	"bytes"
	"strings"
	"testing"
)

// canon describes what an encoder must produce for a value decoded from b:
// b with reserved bytes (and bits) zeroed and fixed-size strings cut at
// their first NUL.
type canon struct {
	reserved [][2]int // byte ranges [from, to)
	masks    [][2]int // {offset, mask of the bits that survive}
	strings  [][2]int // NUL-padded string fields [from, to)
	bools    []int    // bytes that hold a boolean (non-zero → 1)
}

func (c canon) apply(b []byte) []byte {
	out := bytes.Clone(b)
	for _, r := range c.reserved {
		clear(out[r[0]:r[1]])
	}
	for _, m := range c.masks {
		out[m[0]] &= byte(m[1])
	}
	for _, s := range c.strings {
		if i := bytes.IndexByte(out[s[0]:s[1]], 0); i >= 0 {
			clear(out[s[0]+i : s[1]])
		}
	}
	for _, i := range c.bools {
		if out[i] != 0 {
			out[i] = 1
		}
	}
	return out
}

// roundTrip is the invariant of every record: decoding never panics; a
// buffer shorter than the record is refused; otherwise encoding the value
// gives the canonical form of the input, and decoding that gives the same
// value again.
func roundTrip[T any, P interface {
	*T
	Record
}](t *testing.T, b []byte, size int, decode func([]byte) (T, error), c canon) {
	v, err := decode(b)
	if len(b) < size {
		if err == nil {
			t.Fatalf("decoded %d bytes, shorter than %d", len(b), size)
		}
		return
	}
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	enc := make([]byte, size)
	if err := P(&v).Encode(enc); err != nil {
		t.Fatalf("encode %+v: %v", v, err)
	}
	if want := c.apply(b[:size]); !bytes.Equal(enc, want) {
		t.Fatalf("re-encoded\n got %x\nwant %x", enc, want)
	}
	v2, err := decode(enc)
	if err != nil {
		t.Fatalf("decode re-encoded: %v", err)
	}
	enc2 := make([]byte, size)
	if err := P(&v2).Encode(enc2); err != nil || !bytes.Equal(enc, enc2) {
		t.Fatalf("second round trip differs: %v", err)
	}
}

func seeds(f *testing.F, size int, golden ...string) {
	f.Add([]byte{})
	f.Add(make([]byte, size-1))
	f.Add(bytes.Repeat([]byte{0xff}, size))
	for _, g := range golden {
		f.Add(readGolden(f, g, size))
	}
}

func FuzzClassPortInfo(f *testing.F) {
	seeds(f, ClassPortInfoLen)
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip[ClassPortInfo](t, b, ClassPortInfoLen, DecodeClassPortInfo, canon{})
	})
}

func FuzzNodeRecord(f *testing.F) {
	seeds(f, NodeRecordLen)
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip[NodeRecord](t, b, NodeRecordLen, DecodeNodeRecord,
			canon{reserved: [][2]int{{2, 4}}, strings: [][2]int{{44, NodeRecordLen}}})
	})
}

func FuzzPortInfoRecord(f *testing.F) {
	seeds(f, PortInfoRecordLen)
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip[PortInfoRecord](t, b, PortInfoRecordLen, DecodePortInfoRecord, canon{reserved: [][2]int{{3, 4}}})
	})
}

func FuzzPathRecord(f *testing.F) {
	seeds(f, PathRecordLen)
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip[PathRecord](t, b, PathRecordLen, DecodePathRecord,
			canon{reserved: [][2]int{{58, 64}}, masks: [][2]int{{44, 0x8f}}})
	})
}

func FuzzInformInfo(f *testing.F) {
	seeds(f, InformInfoLen)
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip[InformInfo](t, b, InformInfoLen, DecodeInformInfo,
			canon{reserved: [][2]int{{20, 22}, {32, 33}}, masks: [][2]int{{31, respTimeMax}}, bools: []int{22, 23}})
	})
}

func FuzzNotice(f *testing.F) {
	seeds(f, NoticeLen, "notice_trap64")
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip[Notice](t, b, NoticeLen, DecodeNotice, canon{})
	})
}

func FuzzIOUnitInfo(f *testing.F) {
	seeds(f, IOUnitInfoLen)
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip[IOUnitInfo](t, b, IOUnitInfoLen, DecodeIOUnitInfo, canon{})
		if len(b) >= IOUnitInfoLen {
			u, _ := DecodeIOUnitInfo(b)
			for _, s := range u.Present() {
				if s < 1 || s > int(u.MaxControllers) || u.Slot(s) != SlotPresent {
					t.Fatalf("Present listed slot %d", s)
				}
			}
		}
	})
}

func FuzzIOControllerProfile(f *testing.F) {
	seeds(f, IOControllerProfileLen, "ioc_profile_srpt")
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip[IOControllerProfile](t, b, IOControllerProfileLen, DecodeIOControllerProfile, canon{
			reserved: [][2]int{{8, 9}, {18, 21}, {42, 43}, {53, 54}, {55, 64}},
			strings:  [][2]int{{64, IOControllerProfileLen}},
		})
	})
}

func FuzzServiceEntries(f *testing.F) {
	f.Add(readGolden(f, "service_entry_srpt", ServiceEntryLen), 1)
	f.Add(make([]byte, 192), 4)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		es, err := DecodeServiceEntries(b, n)
		if n < 0 || n > ServiceEntriesPerMAD || len(b) < n*ServiceEntryLen {
			if err == nil {
				t.Fatalf("decoded %d entries from %d bytes", n, len(b))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		enc := make([]byte, es.Len())
		if err := es.Encode(enc); err != nil {
			t.Fatal(err)
		}
		var c canon
		for i := range n {
			c.strings = append(c.strings, [2]int{i * ServiceEntryLen, i*ServiceEntryLen + serviceNameLen})
		}
		want := append(c.apply(b[:n*ServiceEntryLen]), make([]byte, (ServiceEntriesPerMAD-n)*ServiceEntryLen)...)
		if !bytes.Equal(enc, want) {
			t.Fatalf("re-encoded\n got %x\nwant %x", enc, want)
		}
		for _, e := range es {
			if id, ok := e.SRPIDExt(); ok && !strings.EqualFold(SRPServiceName(id), e.Name[:len(SRPServicePrefix)+idExtDigits]) {
				t.Fatalf("id_ext %#x does not render back to %q", id, e.Name)
			}
		}
	})
}

// FuzzSAMessage: any buffer decodes without panicking; a decoded message
// re-encodes to a buffer that decodes to the same header, and Records never
// hands out a record shorter than asked or outside the data.
func FuzzSAMessage(f *testing.F) {
	f.Add(readGolden(f, "sa_set_informinfo_64", Size), 8)
	f.Add(make([]byte, 56), 64)
	f.Fuzz(func(t *testing.T, b []byte, minLen int) {
		m, err := DecodeSA(b)
		if err != nil {
			return
		}
		enc := m.Marshal()
		m2, err := DecodeSA(enc)
		if err != nil {
			t.Fatal(err)
		}
		if m2.Header != m.Header || m2.SA != m.SA || !bytes.Equal(m2.Data[:len(m.Data)], m.Data) {
			t.Fatalf("round trip differs")
		}
		if minLen < 1 {
			return
		}
		recs, err := m.Records(minLen)
		if err != nil {
			return
		}
		for _, r := range recs {
			if len(r) < minLen {
				t.Fatalf("record of %d bytes, asked for %d", len(r), minLen)
			}
		}
	})
}

// FuzzDMMessage: decoding never panics; a decoded message round-trips with
// its reserved bytes zeroed.
func FuzzDMMessage(f *testing.F) {
	f.Add(readGolden(f, "dm_get_iounitinfo", Size))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeDM(b)
		if err != nil {
			return
		}
		enc, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		want := canon{reserved: [][2]int{{18, 20}, {HeaderLen, DMDataOffset}}}.apply(b[:Size])
		if !bytes.Equal(enc, want) {
			t.Fatalf("re-encoded\n got %x\nwant %x", enc, want)
		}
	})
}
