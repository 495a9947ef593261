package srplab

import (
	"errors"
	"strings"
	"testing"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// TestNAAFromSerial checks the designator against one LIO produced in the
// lab: serial 5e1ab0000-0c1e-4b7e-9d2f-0123456789ab showed up in
// /sys/block/sda/device/wwid as naa.60014055e1ab00000c1e4b7e9d2f0123.
func TestNAAFromSerial(t *testing.T) {
	for _, tc := range []struct{ serial, naa string }{
		{"5e1ab0000-0c1e-4b7e-9d2f-0123456789ab", "60014055e1ab00000c1e4b7e9d2f0123"},
		{"xyz", "60014050000000000000000000000000"},
		{"ABC-def", "6001405abcdef0000000000000000000"},
	} {
		if got := naaFromSerial(tc.serial); got != tc.naa {
			t.Errorf("naaFromSerial(%q) = %s, want %s", tc.serial, got, tc.naa)
		}
	}
}

// TestLUSerialsGiveDistinctWWIDs: LIO only uses the first 25 hex digits of a
// serial, so the digits that tell LUs apart must come first.
func TestLUSerialsGiveDistinctWWIDs(t *testing.T) {
	seen := map[string]string{}
	for k := range 4 {
		for j := range 40 {
			s := luSerial(k, j)
			naa := naaFromSerial(s)
			if other, dup := seen[naa]; dup {
				t.Fatalf("serials %s and %s give the same NAA %s", other, s, naa)
			}
			seen[naa] = s
		}
	}
}

func TestPathNamesAndPortIDs(t *testing.T) {
	p := newPath(3, 1)
	if p.IniNet != "vethI3" || p.TgtNet != "vethT3" || p.IniDev != "rxe_i3" || p.TgtDev != "rxe_t3" {
		t.Errorf("names %+v", p)
	}
	if p.IniAddr.String() != "198.18.3.1" || p.TgtAddr.String() != "198.18.3.2" || p.subnet() != "198.18.3.0/24" {
		t.Errorf("addresses %v %v %v", p.IniAddr, p.TgtAddr, p.subnet())
	}
	if p.iniTable() != 106 || p.tgtTable() != 107 {
		t.Errorf("tables %d %d", p.iniTable(), p.tgtTable())
	}
	g, err := verbs.ParseGID("fe80:0000:0000:0000:142a:57ff:fe05:23ba")
	if err != nil {
		t.Fatal(err)
	}
	p.IniGID = g
	if got := p.InitiatorPortID(0).String(); got != "0x0000000000000000142a57fffe0523ba" {
		t.Errorf("kernel initiator port id %s", got)
	}
	if got := p.InitiatorPortID(0x5250).String(); !strings.HasPrefix(got, "0x0000000000005250") {
		t.Errorf("initiator port id with ext: %s", got)
	}
	if got := p.Dest(5000).String(); got != "198.18.3.2:5000" {
		t.Errorf("dest %s", got)
	}
}

func TestOptionsDefaultsAndBadPath(t *testing.T) {
	var o Options
	o.defaults()
	if o.Paths != DefaultPaths || o.Targets != 1 || o.LUs != 1 || o.LUSize != DefaultLUSize || o.BlockSize != 512 ||
		o.Port != DefaultPort || len(o.InitiatorExts) != 1 || o.InitiatorExts[0] != 0 {
		t.Errorf("defaults %+v", o)
	}
	l := &Lab{Paths: []Path{newPath(0, 0)}}
	for _, i := range []int{-1, 1} {
		if err := l.LinkDown(i); !errors.Is(err, ErrBadPath) {
			t.Errorf("LinkDown(%d) = %v, want ErrBadPath", i, err)
		}
	}
}

func TestLUIDs(t *testing.T) {
	lu := LU{NAA: naaFromSerial(luSerial(0, 0))}
	if lu.WWID() != "naa."+lu.NAA || lu.MultipathWWID() != "3"+lu.NAA {
		t.Errorf("WWID %s, multipath WWID %s", lu.WWID(), lu.MultipathWWID())
	}
}
