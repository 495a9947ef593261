package config

import (
	"errors"
	"flag"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var update = flag.Bool("update", false, "rewrite testdata/errors/*.golden")

// TestErrorGolden parses every testdata/errors/*.yaml, each of which must be
// refused, and compares the whole message with its .golden file.
func TestErrorGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range files {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			c, err := Load(in)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if c != nil {
				t.Fatal("a refused config must not be returned half-applied")
			}
			var ce *Error
			if !errors.As(err, &ce) || !errors.Is(err, ErrInvalid) || ce.File != in {
				t.Fatalf("error %T %v is not an *Error for %s", err, err, in)
			}
			for _, p := range ce.Problems {
				if p.Line == 0 {
					t.Errorf("problem without a line: %v", p)
				}
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(in, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Fatalf("message differs from %s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

func TestExampleConfig(t *testing.T) {
	c, err := Load("../../contrib/config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Targets) != 2 || len(c.Devices) != 1 || len(c.Blacklist) != 2 {
		t.Fatalf("example parsed to %d targets, %d devices, %d blacklist rules", len(c.Targets), len(c.Devices), len(c.Blacklist))
	}
	t0 := c.Targets[0]
	want := Target{Name: "array-a-p1", Address: netip.MustParseAddr("192.0.2.10"), Port: 5555,
		IDExt: 0x505400fffe654321, IOCGUID: 0x505400fffe654321, ServiceID: 0x505400fffe654321,
		InitiatorExt: 0xfe80000000000000, Source: Source{Addr: netip.MustParseAddr("192.0.2.1")}, PKey: 0xffff}
	if diff := cmp.Diff(want, t0, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Fatalf("targets[0] (-want +got):\n%s", diff)
	}
	if s := c.Targets[1].Source; s.Device != "rxe1" || s.Port != 1 {
		t.Fatalf("targets[1].source = %+v", s)
	}
	// The example spells out the defaults: it must equal an empty file's.
	if diff := cmp.Diff(Default().Defaults, c.Defaults); diff != "" {
		t.Fatalf("example defaults differ from Default() (-default +example):\n%s", diff)
	}
	eff, err := c.Effective("naa.6001405a1b2c3d4e5f60718293a4b5c6", PolicyOverride{})
	if err != nil {
		t.Fatal(err)
	}
	if eff.Selector != SelectorRoundRobin || eff.Grouping != GroupingMultibus ||
		eff.NoPathRetry != (NoPathRetry{Mode: NoPathTimed, Limit: 120 * time.Second}) ||
		eff.Failback != (Failback{Mode: FailbackDeferred, Delay: 30 * time.Second}) || eff.QueueDepth != 128 {
		t.Fatalf("effective = %+v", eff)
	}
	if bl, i := c.Blacklisted("naa.6001405deadbeef01", "", ""); !bl || i != 0 {
		t.Fatalf("wwid rule: %v %d", bl, i)
	}
	if bl, i := c.Blacklisted("naa.1", "LIO-ORG", "scratch-disk"); !bl || i != 1 {
		t.Fatalf("vendor+product rule: %v %d", bl, i)
	}
	if bl, _ := c.Blacklisted("naa.1", "LIO-ORG", "data"); bl {
		t.Fatal("vendor alone matched a rule that also sets product")
	}
}

func TestEmptyFileIsDefault(t *testing.T) {
	for _, in := range []string{"", "# nothing\n", "{}\n", "defaults: {}\n"} {
		c, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if diff := cmp.Diff(Default(), c, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("%q differs from Default() (-want +got):\n%s", in, diff)
		}
	}
}

func TestDefaultsAreValid(t *testing.T) {
	p := Default().Defaults.Path
	if !srpTmoValidRef(p.ReconnectDelay, p.FastIOFailTmo, p.DevLossTmo) {
		t.Fatal("the default SRP timers break srp_tmo_valid")
	}
}

func TestEffectiveOrder(t *testing.T) {
	c, err := Parse([]byte(`
defaults:
  selector: queue-length
  no_path_retry: fail
  queue_depth: 64
devices:
  naa.1:
    selector: round-robin
    queue_depth: 32
`))
	if err != nil {
		t.Fatal(err)
	}
	// defaults only
	e, err := c.Effective("naa.other", PolicyOverride{})
	if err != nil || e.Selector != SelectorQueueLength || e.QueueDepth != 64 || e.NoPathRetry.Mode != NoPathFail {
		t.Fatalf("defaults: %+v, %v", e, err)
	}
	// device override on top
	e, _ = c.Effective("naa.1", PolicyOverride{})
	if e.Selector != SelectorRoundRobin || e.QueueDepth != 32 || e.NoPathRetry.Mode != NoPathFail {
		t.Fatalf("device: %+v", e)
	}
	// store override wins
	e, err = c.Effective("naa.1", PolicyOverride{Selector: "service-time", NoPathRetry: "90"})
	if err != nil || e.Selector != SelectorServiceTime || e.QueueDepth != 32 ||
		e.NoPathRetry != (NoPathRetry{Mode: NoPathTimed, Limit: 90 * time.Second}) {
		t.Fatalf("store: %+v, %v", e, err)
	}
	// a bad stored override is an error naming it, and no settings
	_, err = c.Effective("naa.1", PolicyOverride{Grouping: "striped"})
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].Path != `store.policy["naa.1"].grouping` {
		t.Fatalf("bad override: %v", err)
	}
	if err := ValidatePolicyOverride(PolicyOverride{Selector: "round-robin", Failback: "manual"}); err != nil {
		t.Fatal(err)
	}
	err = ValidatePolicyOverride(PolicyOverride{Selector: "rr", Failback: "later"})
	if want := "config: 2 problems:\n" +
		"  policy.failback: \"later\" is not a keyword, a number of seconds or a duration (accepted: " + acceptFailback + ")\n" +
		"  policy.selector: \"rr\" is not a selector (accepted: " + acceptSelector + ")"; err == nil || err.Error() != want {
		t.Fatalf("ValidatePolicyOverride = %v\nwant %s", err, want)
	}
}

func TestLoadErrors(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	var oe *OpError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &oe) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestParseValues(t *testing.T) {
	ok := []struct {
		got, want any
	}{
		{must(ParseGUID("0x0002c90300a1b2c3")), GUID(0x0002c90300a1b2c3)},
		{must(ParseGUID("0002C90300A1B2C3")), GUID(0x0002c90300a1b2c3)},
		{must(ParseGUID("0002:c903:00a1:b2c3")), GUID(0x0002c90300a1b2c3)},
		{must(ParsePKey("0x7fff")), PKey(0x7fff)},
		{must(ParsePKey("0x1")), PKey(1)},
		{must(ParseSource("fe80::1%eth0")).String(), "fe80::1%eth0"},
		{must(ParseSource("rxe0:1")), Source{Device: "rxe0", Port: 1}},
		{must(ParseSize("4096")), Size(4096)},
		{must(ParseSize("512KiB")), Size(512 * kib)},
		{must(ParseSize("1MiB")).String(), "1MiB"},
		{must(ParseTimeout("off")), TimeoutOff},
		{must(ParseTimeout("1m30s")), Timeout(90 * time.Second)},
		{must(ParseTimeout("0")), Timeout(0)},
		{must(ParseFailback("45")), Failback{Mode: FailbackDeferred, Delay: 45 * time.Second}},
		{must(ParseNoPathRetry("2m")).String(), "2m0s"},
		{AckTimeout(14).Duration().Round(100 * time.Microsecond), 67100 * time.Microsecond},
		{AckTimeout(0).Duration(), time.Duration(0)},
		{PKey(0xffff).Full(), true},
		{PKey(0x7fff).Full(), false},
		{SelectorServiceTime.String(), "service-time"},
		{Selector(0).String(), "unknown(0)"},
		{FailbackDeferred.String(), "deferred"},
		{Failback{}.String(), "unknown(0)"},
		{NoPathTimed.String(), "timed"},
		{GroupingMultibus.String(), "multibus"},
		{GUID(1).String(), "0x0000000000000001"},
	}
	for i, c := range ok {
		if !cmp.Equal(c.got, c.want, cmpopts.EquateComparable(netip.Addr{})) {
			t.Errorf("case %d: got %v, want %v", i, c.got, c.want)
		}
	}
	bad := []error{
		second(ParseGUID("0x123")), second(ParseGUID("0002:c903:00a1")), second(ParseGUID("zz02c90300a1b2c3")),
		second(ParsePKey("0x0000")), second(ParsePKey("0x8000")), second(ParsePKey("65535")), second(ParsePKey("0x10000")),
		second(ParseSource("mlx5_0")), second(ParseSource("mlx5_0:256")), second(ParseSource(":1")),
		second(ParseSize("1GiB")), second(ParseSize("-1")),
		second(ParseTimeout("15")), second(ParseTimeout("-1s")), second(ParseTimeout("OFF")),
		second(ParseFailback("0")), second(ParseNoPathRetry("0s")), second(ParseSelector("Round-Robin")),
	}
	for i, err := range bad {
		if err == nil {
			t.Errorf("bad case %d accepted", i)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func second[T any](_ T, err error) error { return err }

// srpTmoValidRef is the kernel's srp_tmo_valid written out again, in the
// kernel's own terms (seconds, -1 = off), as the reference for FuzzParse.
func srpTmoValidRef(rd, fio, dl Timeout) bool {
	sec := func(t Timeout) int64 {
		if t.IsOff() {
			return -1
		}
		return int64((t.Duration() + time.Second - 1) / time.Second) // a sub-second value counts as more than its floor
	}
	const blockMax = 600
	r, f, d := sec(rd), sec(fio), sec(dl)
	switch {
	case r < 0 && f < 0 && d < 0, rd == 0, f > blockMax, f < 0 && d > blockMax:
		return false
	case f >= 0 && d >= 0 && fio >= dl:
		return false
	}
	return true
}

// FuzzParse: Parse never panics; a refused input yields no Config and only
// FieldErrors; an accepted one has every enum set and SRP timers that the
// kernel's srp_tmo_valid would accept.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/errors/*.yaml")
	files = append(files, "../../contrib/config.example.yaml")
	for _, in := range files {
		b, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			var ce *Error
			if c != nil || !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("refusal without problems or with a config: %v", err)
			}
			return
		}
		p := c.Defaults.Path
		if !srpTmoValidRef(p.ReconnectDelay, p.FastIOFailTmo, p.DevLossTmo) {
			t.Fatalf("accepted timers srp_tmo_valid refuses: %s %s %s", p.ReconnectDelay, p.FastIOFailTmo, p.DevLossTmo)
		}
		for wwid := range c.Devices {
			e, err := c.Effective(wwid, PolicyOverride{})
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(e.Selector.String(), "unknown") || strings.HasPrefix(e.Grouping.String(), "unknown") ||
				strings.HasPrefix(e.Failback.String(), "unknown") || strings.HasPrefix(e.NoPathRetry.String(), "unknown") {
				t.Fatalf("accepted an unset enum: %+v", e)
			}
		}
	})
}

func TestDiscoverySection(t *testing.T) {
	c, err := Load("../../contrib/config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := c.Discovery
	if d.Enabled != DiscoveryAuto || d.RescanDuration() != time.Minute || len(d.Ports) != 2 ||
		d.Ports[1].String() != "mlx5_0:2" || !slices.Equal(d.PKeyValues(), []uint16{0xffff, 0x8001}) || len(d.Rules) != 2 {
		t.Fatalf("example discovery = %+v", d)
	}
	if got := d.Rules[0].String(); got != "a pkey=8001,queue_size=128,max_sect=1024" {
		t.Fatalf("rule 0 = %q", got)
	}
	// auto: off with static targets (the example has two), on without.
	if c.DiscoveryActive() {
		t.Fatal("auto discovery active although the file has static targets")
	}
	if !Default().DiscoveryActive() {
		t.Fatal("auto discovery inactive without static targets")
	}
	for in, want := range map[string]bool{
		"discovery: {enabled: true}\ntargets: [{address: 192.0.2.1, port: 5555, id_ext: 0x1111111111111111}]": true,
		"discovery: {enabled: false}": false,
	} {
		c, err := Parse([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if c.DiscoveryActive() != want {
			t.Errorf("%q: active %v, want %v", in, !want, want)
		}
	}
	c, err = Parse([]byte("discovery: {rescan_interval: off}"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Discovery.RescanDuration() >= 0 {
		t.Fatalf("rescan off = %v, want negative", c.Discovery.RescanDuration())
	}
	if Default().Discovery.Enabled.String() != "auto" || DiscoveryMode(0).String() != "unknown(0)" {
		t.Fatal("mode names")
	}
}
