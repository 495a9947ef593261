package paths_test

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
	"github.com/srp-mpathd/srp-mpathd/internal/paths"
)

func TestPolicyParseRoundTrip(t *testing.T) {
	for _, g := range []paths.Grouping{paths.GroupFailover, paths.GroupMultibus, paths.GroupByPrio} {
		if got, err := paths.ParseGrouping(g.String()); err != nil || got != g {
			t.Errorf("grouping %v: %v %v", g, got, err)
		}
	}
	for _, s := range []paths.Selector{paths.SelectServiceTime, paths.SelectRoundRobin, paths.SelectQueueLength} {
		if got, err := paths.ParseSelector(s.String()); err != nil || got != s {
			t.Errorf("selector %v: %v %v", s, got, err)
		}
	}
	fbs := map[string]paths.Failback{"immediate": paths.FailbackImmediate, "manual": paths.FailbackManual, "30": paths.Failback(30 * time.Second), "1.5s": paths.Failback(1500 * time.Millisecond)}
	for in, want := range fbs {
		if got, err := paths.ParseFailback(in); err != nil || got != want {
			t.Errorf("failback %q: %v %v", in, got, err)
		}
	}
	nprs := map[string]paths.NoPathRetry{"queue": paths.NoPathQueue, "fail": paths.NoPathFail, "12": paths.NoPathRetry(12 * time.Second)}
	for in, want := range nprs {
		if got, err := paths.ParseNoPathRetry(in); err != nil || got != want {
			t.Errorf("no_path_retry %q: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "sometimes", "-3", "0", "fail2"} {
		if _, err := paths.ParseNoPathRetry(bad); !errors.Is(err, paths.ErrBadPolicy) {
			t.Errorf("no_path_retry %q accepted (%v)", bad, err)
		}
		if _, err := paths.ParseFailback(bad); !errors.Is(err, paths.ErrBadPolicy) {
			t.Errorf("failback %q accepted (%v)", bad, err)
		}
	}
	if _, err := paths.ParseSelector("random"); !errors.Is(err, paths.ErrBadPolicy) {
		t.Error("selector random accepted")
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := paths.DefaultPolicy().Validate(); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*paths.Policy){
		"heartbeat_timeout":         func(p *paths.Policy) { p.HeartbeatTimeout = 0 },
		"io_timeout":                func(p *paths.Policy) { p.IOTimeout = 0 },
		"abort_timeout":             func(p *paths.Policy) { p.AbortTimeout = -1 },
		"max_retries":               func(p *paths.Policy) { p.MaxRetries = 1000 },
		"max_reconnects":            func(p *paths.Policy) { p.MaxReconnects = 0 },
		"max_reconnects_per_target": func(p *paths.Policy) { p.MaxReconnectsPerTarget = 0 },
		"path_selector":             func(p *paths.Policy) { p.Selector = 9 },
		"path timers":               func(p *paths.Policy) { p.Path.ReconnectDelay = 0 },
	}
	for field, mut := range cases {
		p := paths.DefaultPolicy()
		mut(&p)
		err := p.Validate()
		var pe *paths.PolicyError
		if !errors.As(err, &pe) || pe.Field != field {
			t.Errorf("%s: got %v", field, err)
		}
	}
	p := paths.DefaultPolicy()
	p.Path.ReconnectDelay = 0
	if err := p.Validate(); !errors.Is(err, fsm.ErrInvalidConfig) || !errors.Is(err, paths.ErrBadPolicy) {
		t.Errorf("fsm rule not wrapped: %v", err)
	}
	p = paths.DefaultPolicy()
	p.HeartbeatInterval, p.HeartbeatTimeout = 0, 0
	if err := p.Validate(); err != nil {
		t.Errorf("heartbeats off rejected: %v", err)
	}
	if s := paths.DefaultPolicy().String(); s == "" {
		t.Error("empty policy string")
	}
}

func TestErrno(t *testing.T) {
	cases := map[error]syscall.Errno{
		nil: 0, paths.ErrNoPath: syscall.ENOLINK, paths.ErrIO: syscall.EIO, paths.ErrTarget: syscall.EREMOTEIO,
		paths.ErrMedium: syscall.ENODATA, paths.ErrProtection: syscall.EILSEQ, paths.ErrNoSpace: syscall.ENOSPC,
		paths.ErrReservation: syscall.EBADE, paths.ErrInvalid: syscall.EINVAL,
	}
	for err, want := range cases {
		if got := paths.Errno(err); got != want {
			t.Errorf("Errno(%v) = %v, want %v", err, got, want)
		}
	}
}
