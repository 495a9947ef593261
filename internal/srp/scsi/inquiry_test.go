package scsi

import (
	"errors"
	"testing"
)

func TestParseInquiryGolden(t *testing.T) {
	cases := []struct {
		file string
		want InquiryData
	}{
		{"inquiry_lio.hex", InquiryData{Qualifier: 0, DeviceType: TypeDisk, Version: 6, HiSup: true,
			ResponseFormat: 2, TPGS: 1, CmdQue: true, Vendor: "LIO-ORG", Product: "RAMDISK-MCP", Revision: "4.0"}},
		{"inquiry_no_lu.hex", InquiryData{Qualifier: QualifierNoLU, DeviceType: TypeUnknown, Version: 6, HiSup: true,
			ResponseFormat: 2, CmdQue: true, Vendor: "LIO-ORG", Product: "RAMDISK-MCP", Revision: "4.0"}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			b := golden(t, tc.file)
			got, err := ParseInquiry(b)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			mustEqualBytes(t, "Append", got.Append(nil), b)
		})
	}
}

func TestParseInquiryShortAndLong(t *testing.T) {
	b := golden(t, "inquiry_lio.hex")
	if _, err := ParseInquiry(b[:4]); !errors.Is(err, ErrShort) {
		t.Errorf("4 bytes: err = %v, want ErrShort", err)
	}
	// Cut inside the product field: the strings come out short.
	got, err := ParseInquiry(b[:20])
	if err != nil {
		t.Fatal(err)
	}
	if got.Vendor != "LIO-ORG" || got.Product != "RAMD" || got.Revision != "" {
		t.Errorf("cut at 20: %+v", got)
	}
	// Bytes beyond the additional length are not part of the data.
	c := append([]byte(nil), b...)
	c[4] = 15 // ends after byte 19
	got, err = ParseInquiry(c)
	if err != nil {
		t.Fatal(err)
	}
	if got.Product != "RAMD" {
		t.Errorf("additional length 15: product %q", got.Product)
	}
	// Longer data (version descriptors) is fine.
	long := append(append([]byte(nil), b...), make([]byte, 60)...)
	long[4] = byte(len(long) - 5)
	if _, err := ParseInquiry(long); err != nil {
		t.Error(err)
	}
}
