package fsm_test

import (
	"errors"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
)

// kernelTmoValid is srp_tmo_valid from drivers/scsi/scsi_transport_srp.c,
// restated over whole seconds as an independent reference (differential
// check of Config.Validate). Rule 5 (dev_loss_tmo >= LONG_MAX/HZ) cannot
// trigger for the int16 values the fuzzer feeds.
func kernelTmoValid(rd, fio, dl int) bool {
	const maxBlock = 600 // SCSI_DEVICE_BLOCK_MAX_TIMEOUT
	switch {
	case rd < 0 && fio < 0 && dl < 0:
		return false
	case rd == 0:
		return false
	case fio > maxBlock:
		return false
	case fio < 0 && dl > maxBlock:
		return false
	case fio >= 0 && dl >= 0 && fio >= dl:
		return false
	}
	return true
}

func flapValid(count, window, hold int) bool {
	if count < 0 || count > fsm.MaxFlapCount || window < 0 || hold < 0 {
		return false
	}
	return count == 0 || (window > 0 && hold > 0)
}

// FuzzStep feeds a random configuration and a random event sequence (times
// may run backwards) and checks the machine's invariants after every Step.
func FuzzStep(f *testing.F) {
	f.Add(int16(10), int16(15), int16(600), int16(3), int16(120), int16(30),
		[]byte{1, 2, 0, 0, 20, 0, 4, 1, 0, 0, 30, 0, 3, 1, 0, 1, 2, 5})
	f.Add(int16(-1), int16(-1), int16(30), int16(0), int16(0), int16(0),
		[]byte{1, 0, 1, 0, 100, 0, 0, 100, 0})
	f.Add(int16(1), int16(0), int16(5), int16(1), int16(60), int16(5),
		[]byte{1, 0, 1, 0, 2, 0, 3, 0, 0, 0, 20, 0, 2, 1, 0, 5, 1, 0, 3, 0, 0, 6, 0, 0})
	f.Add(int16(5), int16(-1), int16(-1), int16(2), int16(10), int16(10),
		[]byte{1, 0, 3, 0, 10, 0, 4, 0, 0, 0, 10, 0, 3, 0xf0, 0, 7, 1, 9})
	f.Add(int16(0), int16(15), int16(15), int16(-1), int16(0), int16(0), []byte{})
	f.Fuzz(func(t *testing.T, rd, fio, dl, flapCount, flapWindow, holdDown int16, events []byte) {
		cfg := fsm.Config{
			ReconnectDelay: fsm.Timeout(time.Duration(rd) * time.Second),
			FastIOFailTmo:  fsm.Timeout(time.Duration(fio) * time.Second),
			DevLossTmo:     fsm.Timeout(time.Duration(dl) * time.Second),
			FlapCount:      int(flapCount),
			FlapWindow:     time.Duration(flapWindow) * time.Second,
			HoldDown:       time.Duration(holdDown) * time.Second,
		}
		want := kernelTmoValid(int(rd), int(fio), int(dl)) && flapValid(int(flapCount), int(flapWindow), int(holdDown))
		p, err := fsm.New(cfg, epoch)
		if (err == nil) != want {
			t.Fatalf("New(%+v) error = %v; kernel rules say valid=%t", cfg, err, want)
		}
		if err != nil {
			var ce *fsm.ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, fsm.ErrInvalidConfig) {
				t.Fatalf("error %v is not a *ConfigError wrapping ErrInvalidConfig", err)
			}
			return
		}
		now := epoch
		last := p.Status()
		var out []fsm.Action
		for i := 0; i+3 <= len(events); i += 3 {
			ev, at := fuzzEvent(events[i:i+3], now)
			if at.After(now) {
				now = at
			}
			wasLost := p.State() == fsm.Lost
			out = p.Step(ev, out[:0])
			st := p.Status()
			checkInvariants(t, ev, out, last, st, now, p, cfg)
			if wasLost && (st.State != fsm.Lost || len(out) > 0) {
				t.Fatalf("lost is terminal, but %v made it %v with %v", ev.Kind, st.State, out)
			}
			last = st
		}
	})
}

// fuzzEvent decodes 3 bytes: kind, signed time step, failure kind. The time
// step may be negative (a late or reordered event).
func fuzzEvent(b []byte, now time.Time) (fsm.Event, time.Time) {
	dt := time.Duration(int8(b[1])) * 500 * time.Millisecond
	if b[0]&0x80 != 0 {
		dt *= 100 // occasionally jump far ahead (or back)
	}
	at := now.Add(dt)
	switch b[0] % 8 {
	case 0:
		return fsm.Tick(at), at
	case 1:
		return fsm.Fail(at, fsm.FailureKind(b[2]%10), "fuzz"), at
	case 2:
		return fsm.Fail(at, fsm.AdminFail, "fuzz"), at
	case 3:
		return fsm.ReconnectSucceeded(at), at
	case 4:
		return fsm.ReconnectFailed(at, "fuzz"), at
	case 5:
		return fsm.AdminReinstate(at), at
	case 6:
		return fsm.Delete(at), at
	default:
		return fsm.Event{Kind: fsm.EventKind(b[0]), Now: at}, at
	}
}

func checkInvariants(t *testing.T, ev fsm.Event, out []fsm.Action, before, st fsm.Status, now time.Time, p *fsm.Path, cfg fsm.Config) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("after %v at %v (state %v -> %v, actions %v): "+format,
			append([]any{ev.Kind, ev.Now.Sub(epoch), before.State, st.State, out}, args...)...)
	}
	if !st.State.Valid() || st.State != p.State() {
		fail("invalid state %v", st.State)
	}
	if err := orderError(out); err != nil {
		fail("%v", err)
	}
	if st.Since.Before(before.Since) || st.Since.After(now) {
		fail("since %v outside [%v, %v]", st.Since.Sub(epoch), before.Since.Sub(epoch), now.Sub(epoch))
	}
	if next, ok := p.NextDeadline(); ok && !next.After(now) {
		fail("next deadline %v is not after now %v", next.Sub(epoch), now.Sub(epoch))
	}
	for _, a := range out {
		if (a.Kind == fsm.ActionScheduleReconnect || a.Kind == fsm.ActionHoldDown) && !a.At.After(now) {
			fail("%v at %v is not in the future", a.Kind, a.At.Sub(epoch))
		}
	}
	armed := !st.FastIOFailAt.IsZero() || !st.DevLossAt.IsZero() || !st.NextReconnect.IsZero()
	switch st.State {
	case fsm.Running:
		if armed || !st.HeldDownUntil.IsZero() || st.Reconnecting || st.AdminDown || !st.FirstFailure.IsZero() || st.FailedReconnects != 0 {
			fail("running with recovery state: %+v", st)
		}
	case fsm.HeldDown:
		if armed || st.HeldDownUntil.IsZero() || st.Reconnecting || st.AdminDown {
			fail("held-down inconsistent: %+v", st)
		}
	case fsm.Blocked:
		if st.AdminDown || !st.HeldDownUntil.IsZero() {
			fail("blocked inconsistent: %+v", st)
		}
		if cfg.ReconnectDelay.IsOff() && !st.NextReconnect.IsZero() {
			fail("reconnect armed with reconnect_delay off: %+v", st)
		}
	case fsm.FailFast:
		if !st.FastIOFailAt.IsZero() || !st.HeldDownUntil.IsZero() {
			fail("fail-fast inconsistent: %+v", st)
		}
		if st.AdminDown && armed {
			fail("admin-down with timers: %+v", st)
		}
	case fsm.Lost:
		if armed || !st.HeldDownUntil.IsZero() || st.Reconnecting {
			fail("lost with timers: %+v", st)
		}
	}
	if cfg.FlapCount == 0 && (st.Flapping || st.RecentFailures != 0) {
		fail("flap damping off but %+v", st)
	}
	if st.RecentFailures > cfg.FlapCount {
		fail("recent failures %d > flap_count %d", st.RecentFailures, cfg.FlapCount)
	}
	for _, a := range out {
		if a.Kind == fsm.ActionRemove && st.State != fsm.Lost {
			fail("remove without lost")
		}
		if a.Kind == fsm.ActionReinstate && before.State == fsm.Running {
			fail("reinstate of a running path")
		}
	}
}
