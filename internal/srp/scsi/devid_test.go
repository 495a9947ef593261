package scsi

import (
	"errors"
	"testing"
)

// The LIO sample (testdata/vpd83_lio.hex, built as target_core_spc.c's
// spc_emulate_evpd_83 does) must give the WWID multipath shows for such an
// LU: "3" + the NAA 6 designator 0x6001405... in lower-case hex.
func TestDeviceIDLIO(t *testing.T) {
	b := golden(t, "vpd83_lio.hex")
	d, err := ParseDeviceID(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Designators) != 7 {
		t.Fatalf("%d designators, want 7", len(d.Designators))
	}
	naa := d.Designators[0]
	if naa.Type != DesigNAA || naa.NAA() != NAAIEEERegisteredExt || naa.Association != AssocLU || naa.CodeSet != CodeSetBinary {
		t.Errorf("first designator %+v", naa)
	}
	rtp := d.Designators[2]
	if rtp.Type != DesigRelativeTargetPort || !rtp.PIV || rtp.ProtocolID != 4 || rtp.Association != AssocTargetPort {
		t.Errorf("relative target port %+v", rtp)
	}
	for _, x := range d.Designators {
		if err := x.Check(); err != nil {
			t.Errorf("%v: %v", x, err)
		}
	}
	w, err := d.WWID()
	if err != nil {
		t.Fatal(err)
	}
	if want := "36001405e3b0a9d53c354d439e0b2c3a1"; w != want {
		t.Errorf("WWID %q, want %q", w, want)
	}
	if s := naa.String(); s != "naa.6001405e3b0a9d53c354d439e0b2c3a1" {
		t.Errorf("String() = %q", s)
	}
	mustEqualBytes(t, "Append", d.Append(nil), b)

	// The same LU without the NAA designator (LIO without vpd_unit_serial
	// emits only the T10 one): "1" + text, white space → '_'.
	d.Designators = d.Designators[1:]
	w, err = d.WWID()
	if err != nil {
		t.Fatal(err)
	}
	if want := "1LIO-ORG_RAMDISK-MCP:e3b0a9d5-3c35-4d43-9e0b-2c3a1d5f8e77"; w != want {
		t.Errorf("T10 WWID %q, want %q", w, want)
	}
}

func TestWWIDPriority(t *testing.T) {
	naa5 := Designator{CodeSet: CodeSetBinary, Type: DesigNAA, ID: []byte{0x50, 1, 2, 3, 4, 5, 6, 7}}
	naa6 := Designator{CodeSet: CodeSetBinary, Type: DesigNAA, ID: []byte{0x60, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}}
	naa3 := Designator{CodeSet: CodeSetBinary, Type: DesigNAA, ID: []byte{0x3a, 0xbc, 0, 0, 0, 0, 0, 1}}
	eui := Designator{CodeSet: CodeSetBinary, Type: DesigEUI64, ID: []byte{0xAB, 0xCD, 0xEF, 0, 1, 2, 3, 4}}
	t10 := Designator{CodeSet: CodeSetASCII, Type: DesigT10Vendor, ID: []byte("ACME    disk  42\x00junk")}
	name := Designator{CodeSet: CodeSetUTF8, Type: DesigSCSIName, ID: []byte("naa.600A0B80\x00\x00\x00\x00")}
	portNAA := naa6
	portNAA.Association = AssocTargetPort
	portNAA.ID = []byte{0x60, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	// scsi_id takes the NAA nibble from the first identifier byte whatever
	// the code set: 'P' is 0x50, NAA 5; '5' is 0x35, NAA 3.
	asciiNAA5 := Designator{CodeSet: CodeSetASCII, Type: DesigNAA, ID: []byte("PFOO")}
	asciiNAA3 := Designator{CodeSet: CodeSetASCII, Type: DesigNAA, ID: []byte("5FOO")}

	cases := []struct {
		name string
		ds   []Designator
		want string
	}{
		{"NAA 6 beats an earlier NAA 5", []Designator{naa5, naa6}, "3600102030405060708090a0b0c0d0e0f"},
		{"NAA 5 beats an earlier NAA 3", []Designator{naa3, naa5}, "35001020304050607"},
		{"any NAA beats EUI-64", []Designator{eui, naa3}, "33abc000000000001"},
		{"EUI-64 beats T10", []Designator{t10, eui}, "2abcdef0001020304"},
		{"T10 text, white space collapsed, cut at NUL", []Designator{t10}, "1ACME_disk_42"},
		{"target port association ignored", []Designator{portNAA, eui}, "2abcdef0001020304"},
		{"binary NAA 5 beats ASCII NAA 5", []Designator{asciiNAA5, naa5}, "35001020304050607"},
		{"ASCII NAA 5 beats binary NAA 3", []Designator{naa3, asciiNAA5}, "3PFOO"},
		{"binary NAA 3 beats ASCII NAA 3", []Designator{asciiNAA3, naa3}, "33abc000000000001"},
		{"ASCII NAA 3 beats EUI-64", []Designator{eui, asciiNAA3}, "35FOO"},
		{"SCSI name string as last resort", []Designator{name}, "8naa.600A0B80"},
		{"T10 beats SCSI name string", []Designator{name, t10}, "1ACME_disk_42"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := DeviceID{Designators: tc.ds}
			got, err := d.WWID()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("WWID %q, want %q", got, tc.want)
			}
			// Through the wire and back, the answer is the same.
			back, err := ParseDeviceID(d.Append(nil))
			if err != nil {
				t.Fatal(err)
			}
			if w, _ := back.WWID(); w != tc.want {
				t.Errorf("after round trip: %q", w)
			}
		})
	}
}

func TestWWIDNone(t *testing.T) {
	d := DeviceID{Designators: []Designator{
		{CodeSet: CodeSetBinary, Type: DesigRelativeTargetPort, Association: AssocTargetPort, ID: []byte{0, 0, 0, 1}},
		{CodeSet: CodeSetBinary, Type: DesigNAA},                           // empty
		{CodeSet: CodeSetASCII, Type: DesigT10Vendor, ID: []byte{0, 'x'}},  // blank before its NUL
		{CodeSet: CodeSetASCII, Type: DesigT10Vendor, ID: []byte(" \t  ")}, // only white space
		{CodeSet: CodeSetBinary, Type: DesigVendorSpecific, ID: []byte{1, 2}},
	}}
	if _, err := d.WWID(); !errors.Is(err, ErrNoDesignator) {
		t.Errorf("err = %v, want ErrNoDesignator", err)
	}
}

func TestUdevSanitize(t *testing.T) {
	cases := []struct{ in, want string }{
		{"1ABC", "1ABC"},
		{"1  lead and  trail  ", "1_lead_and_trail"},
		{" \t1x", "1x"},
		{"1a\tb\nc", "1a_b_c"},
		{"1a/b*c", "1a_b_c"},
		{`1a\x2fb`, `1a\x2fb`},
		{"1caf\u00e9", "1caf\u00e9"},
		{"1bad\xffbyte", "1bad_byte"},
		{"1#+-.:=@_", "1#+-.:=@_"},
	}
	for _, tc := range cases {
		if got := udevSanitize(tc.in); got != tc.want {
			t.Errorf("udevSanitize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDesignatorCheck(t *testing.T) {
	cases := []struct {
		d  Designator
		ok bool
	}{
		{Designator{CodeSet: CodeSetBinary, Type: DesigNAA, ID: make([]byte, 8)}, false}, // NAA 0
		{Designator{CodeSet: CodeSetBinary, Type: DesigNAA, ID: append([]byte{0x20}, make([]byte, 7)...)}, true},
		{Designator{CodeSet: CodeSetBinary, Type: DesigNAA, ID: append([]byte{0x30}, make([]byte, 7)...)}, true},
		{Designator{CodeSet: CodeSetBinary, Type: DesigNAA, ID: append([]byte{0x50}, make([]byte, 15)...)}, false},
		{Designator{CodeSet: CodeSetBinary, Type: DesigNAA, ID: append([]byte{0x60}, make([]byte, 15)...)}, true},
		{Designator{CodeSet: CodeSetASCII, Type: DesigNAA, ID: append([]byte{0x60}, make([]byte, 15)...)}, false},
		{Designator{CodeSet: CodeSetBinary, Type: DesigEUI64, ID: make([]byte, 8)}, true},
		{Designator{CodeSet: CodeSetBinary, Type: DesigEUI64, ID: make([]byte, 12)}, true},
		{Designator{CodeSet: CodeSetBinary, Type: DesigEUI64, ID: make([]byte, 16)}, true},
		{Designator{CodeSet: CodeSetBinary, Type: DesigEUI64, ID: make([]byte, 10)}, false},
		{Designator{CodeSet: CodeSetASCII, Type: DesigT10Vendor, ID: []byte("SHORT")}, false},
		{Designator{CodeSet: CodeSetUTF8, Type: DesigSCSIName, ID: []byte("iqn\x00")}, true},
		{Designator{CodeSet: CodeSetUTF8, Type: DesigSCSIName, ID: []byte("iqn.")}, false},
	}
	for i, tc := range cases {
		if err := tc.d.Check(); (err == nil) != tc.ok {
			t.Errorf("%d: %v: Check() = %v, want ok=%v", i, tc.d, err, tc.ok)
		}
	}
}

func TestParseDeviceIDErrors(t *testing.T) {
	b := golden(t, "vpd83_lio.hex")
	if _, err := ParseDeviceID(b[:100]); !errors.Is(err, ErrTruncated) {
		t.Errorf("cut page: err = %v, want ErrTruncated", err)
	}
	// Shrink the page length so the last designator sticks out of it.
	c := append([]byte(nil), b...)
	c[3]--
	if _, err := ParseDeviceID(c[:len(c)-1]); !errors.Is(err, ErrFormat) {
		t.Errorf("designator past the page: err = %v, want ErrFormat", err)
	}
}
