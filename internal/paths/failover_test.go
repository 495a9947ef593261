package paths_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
	"github.com/srp-mpathd/srp-mpathd/internal/paths"
)

// Bounds of TestSimFailoverStall (the acceptance figures).
const (
	linkdownStallMax  = 100 * time.Millisecond
	blackholeStallMax = 1000 * time.Millisecond
)

// stallMeter measures how long I/O stalls after a fault: for every I/O that
// completes after the fault, the time from the fault (or its own start,
// if later) to its completion; the stall is the largest.
type stallMeter struct {
	mu    sync.Mutex
	fault time.Time
	stall time.Duration
	ios   int
}

func (m *stallMeter) record(rec ioRecord) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fault.IsZero() || rec.end.Before(m.fault) {
		return
	}
	from := rec.start
	if from.Before(m.fault) {
		from = m.fault
	}
	m.stall = max(m.stall, rec.end.Sub(from))
	m.ios++
}

// arm starts a measurement at the fault, now.
func (m *stallMeter) arm() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fault, m.stall, m.ios = time.Now(), 0, 0
}

// result ends the measurement.
func (m *stallMeter) result() (time.Duration, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fault = time.Time{}
	return m.stall, m.ios
}

// TestSimFailoverStall: 2 paths, QD 16, 4 KiB random read/write, default
// settings. A link going down (PORT_ERR) and a silent blackhole on the path
// carrying I/O must stall I/O for at most 100 ms resp. 1 s of simulated
// time, without an I/O error or a data mismatch.
func TestSimFailoverStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, rigOpts{paths: 2, depth: 16, latency: 250 * time.Microsecond, policy: paths.DefaultPolicy(), seed: 1, logger: debugLogger()})
		defer r.close()
		m := &stallMeter{}
		r.q.onDone = m.record
		stop := r.q.start()
		defer stop()

		const warmup, window = 100 * time.Millisecond, 1200 * time.Millisecond
		time.Sleep(warmup)
		m.arm()
		r.links[0].Down()
		time.Sleep(window)
		linkdown, linkdownIOs := m.result()

		// Bring path 0 back (reconnect_delay) with the workload paused.
		r.q.paused.Store(true)
		r.links[0].Up()
		waitState(t, r, 0, fsm.Running, time.Minute)
		r.q.paused.Store(false)

		time.Sleep(warmup)
		m.arm()
		r.links[0].Blackhole(true)
		time.Sleep(window)
		blackhole, blackholeIOs := m.result()
		stop()
		r.links[0].Blackhole(false)

		fmt.Printf("sim-failover linkdown stall_ms=%d\n", linkdown.Milliseconds())
		fmt.Printf("sim-failover blackhole stall_ms=%d\n", blackhole.Milliseconds())
		t.Logf("I/O after the faults: linkdown %d, blackhole %d; total %d", linkdownIOs, blackholeIOs, r.q.done)
		if len(r.q.errors) > 0 {
			t.Fatalf("%d I/O errors, first: %s", len(r.q.errors), strings.Join(r.q.errors[:min(5, len(r.q.errors))], "; "))
		}
		if linkdownIOs == 0 || blackholeIOs == 0 {
			t.Fatal("no I/O completed after a fault")
		}
		if linkdown > linkdownStallMax {
			t.Errorf("linkdown stall %v > %v", linkdown, linkdownStallMax)
		}
		if blackhole > blackholeStallMax {
			t.Errorf("blackhole stall %v > %v", blackhole, blackholeStallMax)
		}
		if st := r.pathState(0); st.State != fsm.Blocked || st.FSM.Reason.Kind != fsm.HeartbeatMiss {
			t.Errorf("path0 after blackhole: %v (%v), want blocked by a heartbeat miss", st.State, st.FSM.Reason)
		}
		tr := r.dev.Transitions()
		if len(tr) < 3 || !strings.HasPrefix(tr[0].Reason, "port-error") || tr[1].To != fsm.Running {
			t.Errorf("transitions %+v", tr)
		}
	})
}

// waitState sleeps (simulated time) until path i reaches state.
func waitState(t *testing.T, r *rig, i int, state fsm.State, limit time.Duration) {
	t.Helper()
	const step = 50 * time.Millisecond
	for waited := time.Duration(0); waited < limit; waited += step {
		if r.pathState(i).State == state {
			return
		}
		time.Sleep(step)
	}
	t.Fatalf("path%d not %v after %v: %+v", i, state, limit, r.pathState(i))
}

// TestSimMultiQueue: two ublk queues, each with its own channel per path and
// its own thread; a DREQ from the target on one port and a link going down
// on the other move both queues' I/O without an error.
func TestSimMultiQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pol := paths.DefaultPolicy()
		pol.Path.ReconnectDelay = fsm.Timeout(time.Second)
		r := newRig(t, rigOpts{paths: 2, queues: 2, depth: 16, latency: time.Millisecond, policy: pol, seed: 3, logger: debugLogger()})
		defer r.close()
		var stops []func()
		for _, qt := range r.qs {
			stop := qt.start()
			defer stop()
			stops = append(stops, stop)
		}
		time.Sleep(200 * time.Millisecond)
		if n := r.ports[0].KillSessions(); n != 2 {
			t.Fatalf("killed %d sessions, want one per queue", n)
		}
		time.Sleep(300 * time.Millisecond)
		// The DREQ and the flush of the receives it causes race: either
		// may be seen first.
		if st := r.pathState(0); st.State != fsm.Blocked || (st.FSM.Reason.Kind != fsm.CMDisconnect && st.FSM.Reason.Kind != fsm.QPError) {
			t.Fatalf("path0 after DREQ: %v (%v)", st.State, st.FSM.Reason)
		}
		waitState(t, r, 0, fsm.Running, 10*time.Second)
		r.links[1].Down()
		time.Sleep(500 * time.Millisecond)
		for _, stop := range stops {
			stop()
		}
		for k, qt := range r.qs {
			if len(qt.errors) > 0 || qt.done == 0 {
				t.Errorf("queue %d: %d I/O, errors %v", k, qt.done, qt.errors[:min(3, len(qt.errors))])
			}
		}
		if st := r.pathState(0); st.Reconnects != 1 {
			t.Errorf("path0 reconnects %d", st.Reconnects)
		}
	})
}
