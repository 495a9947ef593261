package fsm_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
)

func TestParseTimeout(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want fsm.Timeout
	}{
		{"off", fsm.Off},
		{"OFF", fsm.Off},
		{" off ", fsm.Off},
		{"-1", fsm.Off},
		{"-7", fsm.Off},
		{"0", 0},
		{"10", fsm.Timeout(10 * time.Second)},
		{"1.5s", fsm.Timeout(1500 * time.Millisecond)},
		{"10m", fsm.Timeout(10 * time.Minute)},
		{"0s", 0},
	} {
		got, err := fsm.ParseTimeout(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseTimeout(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "of", "ten", "-1s", "1x", "99999999999999999999"} {
		_, err := fsm.ParseTimeout(in)
		var pe *fsm.ParseError
		if !errors.As(err, &pe) || !errors.Is(err, fsm.ErrInvalidTimeout) || pe.Input != in {
			t.Errorf("ParseTimeout(%q) error = %v; want a *ParseError wrapping ErrInvalidTimeout", in, err)
		}
	}
}

func TestTimeoutString(t *testing.T) {
	if got := fsm.Off.String(); got != "off" {
		t.Errorf("Off = %q", got)
	}
	if got := fsm.Timeout(-5).String(); got != "off" {
		t.Errorf("Timeout(-5) = %q", got)
	}
	if got := fsm.Timeout(15 * time.Second).String(); got != "15s" {
		t.Errorf("15s = %q", got)
	}
	// Round trip through the parser.
	for _, v := range []fsm.Timeout{fsm.Off, 0, fsm.Timeout(1500 * time.Millisecond), fsm.DefaultDevLossTmo} {
		back, err := fsm.ParseTimeout(v.String())
		if err != nil || back != v {
			t.Errorf("ParseTimeout(%q) = %v, %v; want %v", v.String(), back, err, v)
		}
	}
}

func TestConfigErrorNamesRule(t *testing.T) {
	cfg := fsm.DefaultConfig()
	cfg.FastIOFailTmo = fsm.DefaultDevLossTmo
	err := cfg.Validate()
	var ce *fsm.ConfigError
	if !errors.As(err, &ce) || ce.Rule != fsm.RuleFastIOFailBeforeDevLoss {
		t.Fatalf("Validate() = %v; want a *ConfigError for %v", err, fsm.RuleFastIOFailBeforeDevLoss)
	}
	if !errors.Is(err, fsm.ErrInvalidConfig) {
		t.Errorf("%v does not wrap ErrInvalidConfig", err)
	}
	if !strings.Contains(err.Error(), "fast-io-fail-before-dev-loss") {
		t.Errorf("message %q does not name the rule", err)
	}
	if err := fsm.DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig invalid: %v", err)
	}
	if err := (fsm.Config{}).Validate(); err == nil {
		t.Error("the zero Config validated; the kernel refuses reconnect_delay 0")
	}
}

func TestEnumStrings(t *testing.T) {
	seen := map[string]bool{}
	check := func(s string, fallback string) {
		t.Helper()
		key := fallback + " " + s
		if s == "" || strings.HasPrefix(s, fallback+"(") || seen[key] {
			t.Errorf("bad or duplicate %s name %q", fallback, s)
		}
		seen[key] = true
	}
	for s := fsm.Running; s <= fsm.HeldDown; s++ {
		check(s.String(), "state")
		if !s.Valid() {
			t.Errorf("%v not valid", s)
		}
	}
	for k := fsm.EventTick; k <= fsm.EventDelete; k++ {
		check(k.String(), "event")
	}
	for k := fsm.FailureUnspecified; k <= fsm.AdminFail; k++ {
		check(k.String(), "failure")
		back, ok := fsm.ParseFailureKind(k.String())
		if !ok || back != k {
			t.Errorf("ParseFailureKind(%q) = %v, %v", k.String(), back, ok)
		}
	}
	for k := fsm.ActionBlock; k <= fsm.ActionRemove; k++ {
		check(k.String(), "action")
	}
	for r := fsm.RuleAllOff; r <= fsm.RuleHoldDown; r++ {
		check(r.String(), "rule")
	}
	// Out of range values print their number instead of panicking.
	for _, s := range []string{fsm.State(99).String(), fsm.EventKind(99).String(), fsm.FailureKind(99).String(),
		fsm.ActionKind(0).String(), fsm.ActionKind(99).String(), fsm.Rule(0).String(), fsm.Rule(99).String()} {
		if !strings.Contains(s, "(") {
			t.Errorf("out-of-range value printed as %q", s)
		}
	}
	if fsm.State(99).Valid() {
		t.Error("State(99) valid")
	}
	if _, ok := fsm.ParseFailureKind("nonsense"); ok {
		t.Error("ParseFailureKind accepted nonsense")
	}
}

func TestBackoffIsTheKernels(t *testing.T) {
	delay := fsm.Timeout(3 * time.Second)
	for n := 0; n <= 200; n++ {
		// srp_reconnect_work: delay * min(100, max(1, failed - 10)).
		factor := min(100, max(1, n-10))
		if got, want := fsm.Backoff(delay, n), time.Duration(factor)*3*time.Second; got != want {
			t.Errorf("Backoff(3s, %d) = %v, want %v", n, got, want)
		}
	}
	if got := fsm.Backoff(fsm.Off, 5); got != 0 {
		t.Errorf("Backoff(off) = %v", got)
	}
	if got := fsm.Backoff(fsm.Timeout(math.MaxInt64/2), 50); got != math.MaxInt64 {
		t.Errorf("Backoff does not saturate: %v", got)
	}
}

// steadyCycle is one outage and recovery with a failed attempt in between.
func steadyCycle(p *fsm.Path, now *time.Time, out []fsm.Action) []fsm.Action {
	step := func(ev fsm.Event) { out = p.Step(ev, out[:0]) }
	step(fsm.Fail(*now, fsm.QPError, "wc status 12"))
	*now = now.Add(10 * time.Second)
	step(fsm.Tick(*now))
	step(fsm.ReconnectFailed(*now, "rejected"))
	*now = now.Add(10 * time.Second)
	step(fsm.Tick(*now))
	step(fsm.ReconnectSucceeded(*now))
	*now = now.Add(time.Hour) // beyond the flap window: no hold-down
	step(fsm.Tick(*now))
	return out
}

func TestStepDoesNotAllocate(t *testing.T) {
	p, err := fsm.New(fsm.DefaultConfig(), epoch)
	if err != nil {
		t.Fatal(err)
	}
	now := epoch
	out := make([]fsm.Action, 0, 8)
	allocs := testing.AllocsPerRun(200, func() { out = steadyCycle(p, &now, out) })
	if allocs != 0 {
		t.Errorf("a failure/reconnect cycle allocates %v times, want 0", allocs)
	}
	if p.State() != fsm.Running {
		t.Errorf("cycle ended in %v", p.State())
	}
}

func BenchmarkStepCycle(b *testing.B) {
	p, err := fsm.New(fsm.DefaultConfig(), epoch)
	if err != nil {
		b.Fatal(err)
	}
	now := epoch
	out := make([]fsm.Action, 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		out = steadyCycle(p, &now, out)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/6, "ns/step")
}
