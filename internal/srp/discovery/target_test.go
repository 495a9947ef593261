package discovery

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/mad"
)

// Vector 22 of research/srp-protocol.md §5: srp_daemon's add_target string.
func TestTargetStringVector22(t *testing.T) {
	raw, err := os.ReadFile("testdata/add_target_vec22.txt")
	must(t, err)
	want := strings.TrimSpace(string(raw))
	const id = 0x505400fffe654321
	tg := Target{IDExt: id, IOCGUID: id, DGID: gidFrom(0xfe80000000000000, id), PKey: 0xffff, ServiceID: id,
		IOClass: mad.IOClassSRPRev16A}
	if got := tg.String(); got != want {
		t.Fatalf("String()\n got %s\nwant %s", got, want)
	}
	back, err := ParseTarget(want)
	must(t, err)
	back.Static = false
	if diff := cmp.Diff(tg, back, cmpTargets); diff != "" {
		t.Fatalf("ParseTarget (-want +got):\n%s", diff)
	}
	tg.IOClass = mad.IOClassSRPRev10
	tg.Options = "queue_size=64"
	if got := tg.String(); got != want+",io_class=ff00,queue_size=64" {
		t.Fatalf("rev 10 with options: %s", got)
	}
}

func TestParseTargetErrors(t *testing.T) {
	for _, s := range []string{
		"",
		"id_ext=1,ioc_guid=2,service_id=3", // no address
		"id_ext=1,ioc_guid=2,service_id=3,dgid=0,dest=1.2.3.4:5",     // both
		"id_ext=x,ioc_guid=2,service_id=3,dest=1.2.3.4:5",            // bad hex
		"id_ext=1,ioc_guid=2,service_id=3,dest=1.2.3.4",              // no port
		"id_ext=1,ioc_guid=2,service_id=3,dest=1.2.3.4:5,pkey=1ffff", // pkey too wide
		"id_ext=1,ioc_guid=2,service_id=3,dgid=fe80",                 // short gid
		"id_ext",
	} {
		if _, err := ParseTarget(s); !errors.Is(err, ErrBadTarget) {
			t.Errorf("ParseTarget(%q) = %v, want ErrBadTarget", s, err)
		}
	}
	tg, err := ParseTarget("id_ext=1,ioc_guid=2,service_id=3,dgid=fe80::2:c903:0:1,pkey=8001,max_sect=256")
	must(t, err)
	if tg.PKey != 0x8001 || tg.Options != "max_sect=256" || tg.DGID[15] != 1 || tg.DGID[0] != 0xfe {
		t.Fatalf("%+v", tg)
	}
}

func TestRules(t *testing.T) {
	rules, err := ParseRules(strings.NewReader(`
# srp_daemon.conf style
d	dgid=fe800000000000000002c90200402bd5
a	ioc_guid=00a0b80200402bef,queue_size=128,max_cmd_per_lun=128
a pkey=8001
d
`))
	must(t, err)
	for _, tc := range []struct {
		t     Target
		allow bool
		opts  []string
	}{
		{Target{DGID: gidFrom(0xfe80000000000000, 0x0002c90200402bd5), IOCGUID: 0x00a0b80200402bef}, false, nil},
		{Target{IOCGUID: 0x00a0b80200402bef}, true, []string{"queue_size=128", "max_cmd_per_lun=128"}},
		{Target{PKey: 0x8001}, true, nil},
		{Target{PKey: 0x0001}, false, nil}, // pkey compared exactly, as srp_daemon
	} {
		allow, opts := rules.Decide(&tc.t)
		if allow != tc.allow || !cmp.Equal(opts, tc.opts) {
			t.Errorf("%v: allow %v %v, want %v %v", tc.t, allow, opts, tc.allow, tc.opts)
		}
	}
	if allow, _ := (Rules{}).Decide(&Target{}); !allow {
		t.Fatal("no rules must allow")
	}
	for _, bad := range []string{"x id_ext=1", "aid_ext=1", "a id_ext", "a foo=1", "d queue_size=1", "a pkey=10000",
		"a id_ext=00000000000000001"} {
		if _, err := ParseRules(strings.NewReader(bad)); !errors.Is(err, ErrBadRule) {
			t.Errorf("ParseRules(%q) = %v, want ErrBadRule", bad, err)
		}
	}
	var re *RuleError
	if _, err := ParseRules(strings.NewReader("a\n\nq\n")); !errors.As(err, &re) || re.Line != 3 {
		t.Fatalf("line number: %v", err)
	}
}

func TestParsePortRef(t *testing.T) {
	r, err := ParsePortRef("mlx5_0:2")
	if err != nil || r != (PortRef{Device: "mlx5_0", Port: 2}) || r.String() != "mlx5_0:2" {
		t.Fatalf("%v %v", r, err)
	}
	for _, s := range []string{"mlx5_0", ":1", "x:0", "x:256", "x:a"} {
		if _, err := ParsePortRef(s); err == nil {
			t.Errorf("ParsePortRef(%q) accepted", s)
		}
	}
}

// FuzzParseRule: a line either fails with ErrBadRule or parses to a rule
// whose String form parses back to the same rule.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{"a", "d", "a ioc_guid=00a0b80200402bef,queue_size=128", "d dgid=fe800000000000000002c90200402bd5",
		"a pkey=8001,service_id=1,id_ext=2", "a\tmax_sect=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseRule(line)
		if err != nil {
			if !errors.Is(err, ErrBadRule) {
				t.Fatalf("error %v not ErrBadRule", err)
			}
			return
		}
		r2, err := ParseRule(r.String())
		if err != nil {
			t.Fatalf("String %q does not parse: %v", r.String(), err)
		}
		if diff := cmp.Diff(r, r2); diff != "" {
			t.Fatalf("round trip of %q via %q (-first +second):\n%s", line, r.String(), diff)
		}
	})
}

// FuzzParseTarget: a description either fails with ErrBadTarget or parses
// to a target whose String form parses back to the same target.
func FuzzParseTarget(f *testing.F) {
	raw, err := os.ReadFile("testdata/add_target_vec22.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(strings.TrimSpace(string(raw)))
	f.Add("id_ext=1,ioc_guid=2,dest=[fe80::1]:5555,service_id=3,io_class=ff00,queue_size=8")
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			if !errors.Is(err, ErrBadTarget) {
				t.Fatalf("error %v not ErrBadTarget", err)
			}
			return
		}
		tg2, err := ParseTarget(tg.String())
		if err != nil {
			t.Fatalf("String %q does not parse: %v", tg.String(), err)
		}
		if diff := cmp.Diff(tg, tg2, cmpTargets); diff != "" {
			t.Fatalf("round trip of %q via %q (-first +second):\n%s", s, tg.String(), diff)
		}
	})
}

func TestTargetJSON(t *testing.T) {
	const id = 0x505400fffe654321
	tg := Target{IDExt: id, IOCGUID: id, DGID: gidFrom(0xfe80000000000000, id), PKey: 0x8001, PKeyIndex: 3, ServiceID: id,
		IOClass: mad.IOClassSRPRev16A, Local: PortRef{"mlx5_0", 1}, DLID: 7, MaxIUSize: 8276}
	b, err := json.Marshal(tg)
	must(t, err)
	want := `{"id_ext":"505400fffe654321","ioc_guid":"505400fffe654321","dgid":"fe80000000000000505400fffe654321",` +
		`"pkey":"8001","pkey_index":3,"service_id":"505400fffe654321","max_iu_size":8276,"io_class":"0100",` +
		`"local_port":"mlx5_0:1","dlid":7,"add_target":"` + tg.String() + `"}`
	if string(b) != want {
		t.Fatalf("JSON\n got %s\nwant %s", b, want)
	}
}
