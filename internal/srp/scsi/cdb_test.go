package scsi

import (
	"testing"
)

func TestCDBGolden(t *testing.T) {
	recs := goldenRecords(t, "cdb.hex")
	cases := []struct {
		name  string
		build func(*CDB) int
	}{
		{"read10", func(c *CDB) int { return RW(c, false, 0x10, 8, false) }},
		{"write10_fua", func(c *CDB) int { return RW(c, true, 0x12345678, 0x100, true) }},
		{"read10_limit", func(c *CDB) int { return RW(c, false, 0xFFFFFFFF, 0xFFFF, false) }},
		{"read16_lba_over_32b", func(c *CDB) int { return RW(c, false, 1<<32, 8, false) }},
		{"write16_len_over_16b_fua", func(c *CDB) int { return RW(c, true, 0, 0x10000, true) }},
		{"sync10_all", func(c *CDB) int { return SyncCache(c, 0, 0, false) }},
		{"sync16_immed", func(c *CDB) int { return SyncCache(c, 1<<32, 1, true) }},
		{"unmap_24", func(c *CDB) int { return Unmap(c, 24, false) }},
		{"unmap_anchor", func(c *CDB) int { return Unmap(c, 40, true) }},
		{"writesame16_unmap", func(c *CDB) int { return WriteSame16(c, 0x1000, 0x800, true) }},
		{"inquiry_std_96", func(c *CDB) int { return Inquiry(c, 96) }},
		{"inquiry_vpd83_255", func(c *CDB) int { return InquiryVPD(c, PageDeviceID, 255) }},
		{"readcap16_32", func(c *CDB) int { return ReadCapacity16(c, ReadCapacity16Len) }},
		{"tur", func(c *CDB) int { return TestUnitReady(c) }},
		{"report_luns_4096", func(c *CDB) int { return ReportLUNs(c, ReportAll, 4096) }},
		{"mode_sense10_caching_dbd", func(c *CDB) int { return ModeSense10(c, ModePageCaching, 0, PageCurrent, true, 0xC0) }},
		{"mode_sense10_all_changeable", func(c *CDB) int { return ModeSense10(c, ModePageAll, 0, PageChangeable, false, 0x1000) }},
	}
	if len(cases) != len(recs) {
		t.Errorf("%d cases for %d golden records", len(cases), len(recs))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := goldenRecord(t, recs, tc.name)
			// Dirty the buffer first: builders must clear bytes they do not set.
			c := CDB{0: 0xEE, 1: 0xEE, 9: 0xEE, 15: 0xEE}
			n := tc.build(&c)
			if n != len(want) {
				t.Fatalf("length %d, want %d", n, len(want))
			}
			mustEqualBytes(t, "cdb", c[:n], want)
			for i, b := range c[n:] {
				if b != 0 {
					t.Errorf("byte %d past the CDB is 0x%02x, want 0", n+i, b)
				}
			}
		})
	}
}

func TestRWChoosesForm(t *testing.T) {
	cases := []struct {
		lba    uint64
		blocks uint32
		want   int
	}{
		{0, 0, 10},
		{0xFFFFFFFF, 0xFFFF, 10},
		{0x100000000, 1, 16},
		{0, 0x10000, 16},
		{^uint64(0), ^uint32(0), 16},
	}
	for _, tc := range cases {
		var c CDB
		if n := RW(&c, false, tc.lba, tc.blocks, false); n != tc.want {
			t.Errorf("RW(lba %#x, %d blocks) = %d-byte CDB, want %d", tc.lba, tc.blocks, n, tc.want)
		}
		if Uses16(tc.lba, tc.blocks) != (tc.want == 16) {
			t.Errorf("Uses16(%#x, %d) disagrees with RW", tc.lba, tc.blocks)
		}
	}
}

// The data path builds a CDB per I/O and classifies each completion: none of
// it may allocate.
func TestDataPathAllocs(t *testing.T) {
	var c CDB
	sense := golden(t, "sense_fixed_medium.hex")
	params := make([]byte, 0, 64)
	ext := []Extent{{LBA: 1, Blocks: 2}}
	var lba uint64
	allocs := testing.AllocsPerRun(1000, func() {
		lba += 1 << 31 // alternate between the 10- and 16-byte forms
		_ = RW(&c, lba&(1<<31) != 0, lba, 8, true)
		_ = SyncCache(&c, 0, 0, false)
		_ = WriteSame16(&c, lba, 8, true)
		_ = Unmap(&c, uint16(len(AppendUnmapParams(params[:0], ext))), false)
		if d := Classify(StatusCheckCondition, sense); d.Action != ActionFail {
			t.Fatal(d)
		}
		if _, err := ParseSense(sense); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("data path allocates %.1f times per I/O, want 0", allocs)
	}
}

func BenchmarkRW(b *testing.B) {
	var c CDB
	b.ReportAllocs()
	for i := range b.N {
		RW(&c, i&1 == 0, uint64(i)<<20, 256, i&2 == 0)
	}
}

func BenchmarkClassifySense(b *testing.B) {
	sense := golden(b, "sense_desc_alua.hex")
	b.ReportAllocs()
	for range b.N {
		Classify(StatusCheckCondition, sense)
	}
}

func TestStringers(t *testing.T) {
	cases := []struct{ got, want string }{
		{StatusGood.String(), "GOOD"},
		{StatusCheckCondition.String(), "CHECK CONDITION"},
		{StatusBusy.String(), "BUSY"},
		{StatusReservationConflict.String(), "RESERVATION CONFLICT"},
		{StatusTaskSetFull.String(), "TASK SET FULL"},
		{StatusACAActive.String(), "ACA ACTIVE"},
		{StatusTaskAborted.String(), "TASK ABORTED"},
		{Status(0x99).String(), "Status(0x99)"},
		{KeyMediumError.String(), "MEDIUM ERROR"},
		{SenseKey(0xC).String(), "SenseKey(0x0c)"},
		{OpRead16.String(), "READ(16)"},
		{ActionRetryOtherPath.String(), "retry-other-path"},
		{ClassMedium.String(), "medium"},
		{NoticeLUNsChanged.String(), "luns-changed"},
		{TypeDisk.String(), "disk"},
		{PageDeviceID.String(), "device identification"},
		{ProvisioningThin.String(), "thin"},
		{AddrFlat.String(), "flat"},
		{CodeSetASCII.String(), "ascii"},
		{AssocTargetPort.String(), "target-port"},
		{DesigNAA.String(), "naa"},
	}
	for _, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
