package mad

import (
	"errors"
	"strings"
	"testing"
)

// An RMPP-reassembled GetTable answer: the record count comes from the
// payload length, not from the (padded) buffer.
func TestRecordsRMPP(t *testing.T) {
	recs := []PortInfoRecord{{EndportLID: 1, CapabilityMask: CapIsDM}, {EndportLID: 2}, {EndportLID: 3}}
	const stride = 64 // PortInfoRecordLen rounded up to 8-byte words
	m := SAMessage{Header: Header{BaseVersion: BaseVersion, Class: ClassSA, ClassVersion: SAClassVersion,
		Method: MethodGetTableResp, AttrID: AttrPortInfoRecord},
		SA: SAHeader{RMPPVersion: RMPPVersion, RMPPType: RMPPTypeData, RMPPFlags: RMPPFlagActive | RMPPFlagFirst | RMPPFlagLast,
			AttrOffset: stride / 8, PayLen: uint32(saHeaderAfterRMPP + len(recs)*stride)},
		Data: make([]byte, len(recs)*stride+40)} // trailing padding must not count
	for i := range recs {
		must(t, recs[i].Encode(m.Data[i*stride:]))
	}
	b := m.Marshal()
	if len(b) != SADataOffset+len(m.Data) {
		t.Fatalf("marshalled %d bytes", len(b))
	}
	d, err := DecodeSA(b)
	must(t, err)
	got, err := d.Records(PortInfoRecordLen)
	must(t, err)
	if len(got) != len(recs) {
		t.Fatalf("%d records, want %d", len(got), len(recs))
	}
	for i, r := range got {
		p, err := DecodePortInfoRecord(r)
		must(t, err)
		if p != recs[i] {
			t.Fatalf("record %d: %+v", i, p)
		}
	}
	d.SA.PayLen = 1 << 20
	if _, err := d.Records(PortInfoRecordLen); !errors.Is(err, ErrBadValue) {
		t.Fatalf("payload past the data: %v", err)
	}
	d.SA.PayLen, d.SA.AttrOffset = uint32(saHeaderAfterRMPP+stride), 1
	if _, err := d.Records(PortInfoRecordLen); !errors.Is(err, ErrBadValue) {
		t.Fatalf("stride shorter than the record: %v", err)
	}
}

func TestStatus(t *testing.T) {
	if err := Status(0).Err(ClassSA, AttrPathRecord); err != nil {
		t.Fatal(err)
	}
	err := SAStatusNoRecords.Err(ClassSA, AttrPathRecord)
	if !errors.Is(err, ErrStatus) || !errors.Is(err, ErrNoRecords) {
		t.Fatalf("%v", err)
	}
	if !strings.Contains(err.Error(), "PathRecord") || !strings.Contains(err.Error(), "no records") {
		t.Fatalf("%q", err.Error())
	}
	err = DMStatusNoIOC.Err(ClassDM, AttrIOControllerProfile)
	if errors.Is(err, ErrNoRecords) || !strings.Contains(err.Error(), "no IOC") {
		t.Fatalf("%v", err)
	}
	if s := (StatusInvalidField | StatusBusy).Describe(ClassDM); s != "0x001d busy (invalid attribute or modifier)" {
		t.Fatalf("%q", s)
	}
	if StatusMethodAttrUnsupported != 0x000c || StatusInvalidField != 0x001c {
		t.Fatal("ib_dm_mad.h values")
	}
}

func TestIOUnitInfoSlots(t *testing.T) {
	var u IOUnitInfo
	u.MaxControllers = 16
	must(t, u.SetSlot(1, SlotPresent))
	must(t, u.SetSlot(4, SlotPresent))
	must(t, u.SetSlot(5, SlotNone))
	// Slot 1 is the high nibble of byte 0 (srpd.c).
	if u.ControllerList[0] != 0x10 || u.ControllerList[1] != 0x01 || u.ControllerList[2] != 0xf0 {
		t.Fatalf("list % x", u.ControllerList[:3])
	}
	if got := u.Present(); len(got) != 2 || got[0] != 1 || got[1] != 4 {
		t.Fatalf("present %v", got)
	}
	if u.Slot(0) != SlotNone || u.Slot(MaxSlots+1) != SlotNone || u.SetSlot(0, 1) == nil || u.SetSlot(1, 0x10) == nil {
		t.Fatal("out-of-range slots")
	}
}

func TestEncodeRefusesOverflow(t *testing.T) {
	b := make([]byte, Size)
	for name, r := range map[string]Record{
		"path flow label": &PathRecord{FlowLabel: 1 << 20},
		"path sl":         &PathRecord{SL: 16},
		"inform qpn":      &InformInfo{QPN: 1 << 24},
		"notice type":     &Notice{Type: 128},
		"node desc":       &NodeRecord{Description: strings.Repeat("x", 65)},
		"ioc id":          &IOControllerProfile{ID: strings.Repeat("x", 65)},
		"entries":         ServiceEntries(make([]ServiceEntry, 5)),
	} {
		if err := r.Encode(b); !errors.Is(err, ErrBadValue) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := (&PathRecord{}).Encode(b[:10]); !errors.Is(err, ErrShortBuffer) {
		t.Errorf("short: %v", err)
	}
	if _, err := DecodeSA(make([]byte, 10)); !errors.Is(err, ErrShortBuffer) {
		t.Errorf("short SA: %v", err)
	}
	hdr := make([]byte, Size)
	hdr[0] = 2
	if _, err := DecodeDM(hdr); !errors.Is(err, ErrBadHeader) {
		t.Errorf("base version 2: %v", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
