package fsm_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
)

// epoch is t=0 of every transcript; times print as offsets from it.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Transcript commands (testdata/*.txt; regenerate with -rewrite and read the
// diff before committing it):
//
//	new [t=D] [reconnect_delay=T] [fast_io_fail=T] [dev_loss=T] [flap_count=N] [flap_window=D] [hold_down=D] [settle=D]
//	    create a path (unset fields take DefaultConfig); prints its status
//	validate <same config args>       print "ok" or the *ConfigError
//	event t=D <kind> [detail=...]     kind: a FailureKind name (qp-error, admin-fail, ...),
//	                                  reconnect-succeeded, reconnect-failed, admin-reinstate, delete, port-active
//	tick t=D                          advance time
//	reconfigure t=D <config args>     Path.Reconfigure
//	status                            the full Status
//	backoff delay=T failed=N[,N...]   fsm.Backoff
//
// After new/event/tick/reconfigure the output is the actions, one a line, then
// the state line, then the next deadline.
func TestTranscripts(t *testing.T) {
	cov := newCoverage()
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts under testdata: %v", err)
	}
	ran := 0
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			ran++
			h := &harness{cov: cov}
			datadriven.RunTest(t, file, h.run)
		})
	}
	// Only a full run can judge coverage (-run may select one file).
	if ran == len(files) && !t.Failed() {
		cov.check(t)
	}
}

type harness struct {
	p   *fsm.Path
	cov *coverage
	out []fsm.Action
}

func (h *harness) run(t *testing.T, d *datadriven.TestData) string {
	switch d.Cmd {
	case "new":
		cfg := parseConfig(t, d, fsm.DefaultConfig())
		p, err := fsm.New(cfg, at(t, d))
		if err != nil {
			h.p = nil
			return "error: " + err.Error() + "\n"
		}
		h.p = p
		return h.show(nil)
	case "validate":
		if err := parseConfig(t, d, fsm.DefaultConfig()).Validate(); err != nil {
			return "error: " + err.Error() + "\n"
		}
		return "ok\n"
	case "event", "tick":
		ev := parseEvent(t, d)
		h.mustPath(t, d)
		from := h.p.State()
		h.out = h.p.Step(ev, h.out[:0])
		checkOrder(t, d.Pos, h.out)
		h.cov.note(from, eventClass(ev), h.p.State())
		return h.show(h.out)
	case "reconfigure":
		h.mustPath(t, d)
		out, err := h.p.Reconfigure(parseConfig(t, d, h.p.Config()), at(t, d), h.out[:0])
		h.out = out
		checkOrder(t, d.Pos, h.out)
		if err != nil {
			return "error: " + err.Error() + "\n" + h.show(h.out)
		}
		return h.show(h.out)
	case "status":
		h.mustPath(t, d)
		return fullStatus(h.p.Status())
	case "backoff":
		var delay string
		var failed []string
		d.ScanArgs(t, "delay", &delay)
		d.ScanArgs(t, "failed", &failed)
		tmo, err := fsm.ParseTimeout(delay)
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
		var b strings.Builder
		for _, f := range failed {
			n, err := strconv.Atoi(f)
			if err != nil {
				d.Fatalf(t, "failed=%q: %v", f, err)
			}
			fmt.Fprintf(&b, "failed=%d next=%s\n", n, fsm.Backoff(tmo, n))
		}
		return b.String()
	default:
		d.Fatalf(t, "unknown command %q", d.Cmd)
		return ""
	}
}

func (h *harness) mustPath(t *testing.T, d *datadriven.TestData) {
	if h.p == nil {
		d.Fatalf(t, "%s: no path (run new first)", d.Cmd)
	}
}

func (h *harness) show(actions []fsm.Action) string {
	var b strings.Builder
	for _, a := range actions {
		b.WriteString(a.Kind.String())
		if !a.At.IsZero() {
			b.WriteString(" at=" + rel(a.At))
		}
		b.WriteByte('\n')
	}
	b.WriteString(stateLine(h.p.Status()))
	if next, ok := h.p.NextDeadline(); ok {
		b.WriteString("next=" + rel(next) + "\n")
	} else {
		b.WriteString("next=none\n")
	}
	return b.String()
}

func stateLine(s fsm.Status) string {
	f := []string{s.State.String(), "since=" + rel(s.Since)}
	if !s.Reason.IsZero() {
		f = append(f, "reason="+s.Reason.Kind.String()+"@"+rel(s.Reason.At))
	}
	add := func(name string, t time.Time) {
		if !t.IsZero() {
			f = append(f, name+"="+rel(t))
		}
	}
	add("fio", s.FastIOFailAt)
	add("dl", s.DevLossAt)
	add("reconnect", s.NextReconnect)
	add("held-until", s.HeldDownUntil)
	if s.Reconnecting {
		f = append(f, "reconnecting")
	}
	if s.FailedReconnects > 0 {
		f = append(f, "failed="+strconv.Itoa(s.FailedReconnects))
	}
	if s.RecentFailures > 0 {
		f = append(f, "recent="+strconv.Itoa(s.RecentFailures))
	}
	if s.Flapping {
		f = append(f, "flapping")
	}
	if s.AdminDown {
		f = append(f, "admin-down")
	}
	return strings.Join(f, " ") + "\n"
}

func fullStatus(s fsm.Status) string {
	var b strings.Builder
	tm := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return rel(t)
	}
	reason := "-"
	if !s.Reason.IsZero() {
		reason = strconv.Quote(s.Reason.String()) + " at " + rel(s.Reason.At)
	}
	fmt.Fprintf(&b, "state:               %s\n", s.State)
	fmt.Fprintf(&b, "since:               %s\n", tm(s.Since))
	fmt.Fprintf(&b, "reason:              %s\n", reason)
	fmt.Fprintf(&b, "first-failure:       %s\n", tm(s.FirstFailure))
	fmt.Fprintf(&b, "fast-io-fail-at:     %s\n", tm(s.FastIOFailAt))
	fmt.Fprintf(&b, "dev-loss-at:         %s\n", tm(s.DevLossAt))
	fmt.Fprintf(&b, "next-reconnect:      %s\n", tm(s.NextReconnect))
	fmt.Fprintf(&b, "reconnecting:        %t\n", s.Reconnecting)
	fmt.Fprintf(&b, "failed-reconnects:   %d\n", s.FailedReconnects)
	fmt.Fprintf(&b, "last-reconnect-err:  %q\n", s.LastReconnectError)
	fmt.Fprintf(&b, "recent-failures:     %d\n", s.RecentFailures)
	fmt.Fprintf(&b, "flapping:            %t\n", s.Flapping)
	fmt.Fprintf(&b, "held-down-until:     %s\n", tm(s.HeldDownUntil))
	fmt.Fprintf(&b, "admin-down:          %t\n", s.AdminDown)
	return b.String()
}

func rel(t time.Time) string { return t.Sub(epoch).String() }

func at(t *testing.T, d *datadriven.TestData) time.Time {
	if !d.HasArg("t") {
		return epoch
	}
	var s string
	d.ScanArgs(t, "t", &s)
	off, err := time.ParseDuration(s)
	if err != nil {
		d.Fatalf(t, "t=%q: %v", s, err)
	}
	return epoch.Add(off)
}

func parseConfig(t *testing.T, d *datadriven.TestData, cfg fsm.Config) fsm.Config {
	tmo := func(key string, dst *fsm.Timeout) {
		var s string
		if d.MaybeScanArgs(t, key, &s) {
			v, err := fsm.ParseTimeout(s)
			if err != nil {
				d.Fatalf(t, "%s: %v", key, err)
			}
			*dst = v
		}
	}
	dur := func(key string, dst *time.Duration) {
		var s string
		if d.MaybeScanArgs(t, key, &s) {
			v, err := time.ParseDuration(s)
			if err != nil {
				d.Fatalf(t, "%s: %v", key, err)
			}
			*dst = v
		}
	}
	tmo("reconnect_delay", &cfg.ReconnectDelay)
	tmo("fast_io_fail", &cfg.FastIOFailTmo)
	tmo("dev_loss", &cfg.DevLossTmo)
	d.MaybeScanArgs(t, "flap_count", &cfg.FlapCount)
	dur("flap_window", &cfg.FlapWindow)
	dur("hold_down", &cfg.HoldDown)
	dur("settle", &cfg.Settle)
	return cfg
}

func parseEvent(t *testing.T, d *datadriven.TestData) fsm.Event {
	now := at(t, d)
	if d.Cmd == "tick" {
		return fsm.Tick(now)
	}
	var detail string
	d.MaybeScanArgs(t, "detail", &detail)
	for _, arg := range d.CmdArgs {
		if len(arg.Vals) > 0 {
			continue
		}
		switch arg.Key {
		case "reconnect-succeeded":
			return fsm.ReconnectSucceeded(now)
		case "reconnect-failed":
			return fsm.ReconnectFailed(now, detail)
		case "admin-reinstate":
			return fsm.AdminReinstate(now)
		case "delete":
			return fsm.Delete(now)
		case "port-active":
			return fsm.PortActive(now)
		case "tick":
			return fsm.Tick(now)
		}
		if k, ok := fsm.ParseFailureKind(arg.Key); ok {
			return fsm.Fail(now, k, detail)
		}
		d.Fatalf(t, "unknown event %q", arg.Key)
	}
	d.Fatalf(t, "event: no kind given")
	return fsm.Event{}
}

// checkOrder asserts the effect order doc.go promises: Block before FailFast
// before Remove, Remove last.
func checkOrder(t testing.TB, pos string, actions []fsm.Action) {
	t.Helper()
	if err := orderError(actions); err != nil {
		t.Errorf("%s: %v", pos, err)
	}
}

func orderError(actions []fsm.Action) error {
	rank := map[fsm.ActionKind]int{fsm.ActionBlock: 1, fsm.ActionFailFast: 2, fsm.ActionRemove: 3}
	last := 0
	for i, a := range actions {
		if a.Kind == fsm.ActionRemove && i != len(actions)-1 {
			return fmt.Errorf("remove is not the last action: %v", actions)
		}
		if r, ok := rank[a.Kind]; ok {
			if r < last {
				return fmt.Errorf("actions out of order: %v", actions)
			}
			last = r
		}
	}
	return nil
}

// eventClass groups events for the coverage check: the transport failure
// kinds behave alike, admin-fail does not.
func eventClass(ev fsm.Event) string {
	if ev.Kind == fsm.EventFailure {
		if ev.Failure == fsm.AdminFail {
			return "admin-fail"
		}
		return "failure"
	}
	return ev.Kind.String()
}

// coverage records which (state, event) pairs and which state changes the
// transcripts exercised, so "every transition is covered" is checked, not
// claimed.
type coverage struct {
	pairs map[string]bool
	edges map[string]bool
}

func newCoverage() *coverage {
	return &coverage{pairs: map[string]bool{}, edges: map[string]bool{}}
}

func (c *coverage) note(from fsm.State, class string, to fsm.State) {
	c.pairs[from.String()+" "+class] = true
	if from != to {
		c.edges[from.String()+" -> "+to.String()] = true
	}
}

func (c *coverage) check(t *testing.T) {
	states := []fsm.State{fsm.Running, fsm.Blocked, fsm.FailFast, fsm.Lost, fsm.HeldDown}
	classes := []string{"tick", "failure", "admin-fail", "reconnect-succeeded", "reconnect-failed", "admin-reinstate", "delete", "port-active"}
	var missing []string
	for _, s := range states {
		for _, cl := range classes {
			if !c.pairs[s.String()+" "+cl] {
				missing = append(missing, s.String()+" "+cl)
			}
		}
	}
	// Every state change the machine can make (the kernel's
	// srp_rport_set_state table, minus LOST -> anything, plus held-down).
	edges := []string{
		"running -> blocked", "running -> fail-fast", "running -> lost",
		"blocked -> running", "blocked -> fail-fast", "blocked -> lost", "blocked -> held-down",
		"fail-fast -> running", "fail-fast -> lost", "fail-fast -> held-down",
		"held-down -> running", "held-down -> blocked", "held-down -> fail-fast", "held-down -> lost",
	}
	for _, e := range edges {
		if !c.edges[e] {
			missing = append(missing, "edge "+e)
		}
	}
	for e := range c.edges {
		if !slices.Contains(edges, e) {
			t.Errorf("transcripts made a transition outside the table: %s", e)
		}
	}
	if len(missing) > 0 {
		t.Errorf("transcripts do not cover:\n  %s", strings.Join(missing, "\n  "))
	}
}
