package paths

import (
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
)

// PathStatus is the visible state of one path.
type PathStatus struct {
	ID       string
	Target   string
	Priority int
	State    fsm.State
	// Since is when State was entered.
	Since time.Time
	// Usable: the path may carry I/O now; Active: it is in the active
	// group.
	Usable, Active bool
	InFlight       int64
	// Latency is the service time EWMA of the queue that completed last.
	Latency   time.Duration
	LastError string
	// Counters since the path was added.
	Completions, Errors, Retries, Reissued, Aborts uint64
	Reconnects, ReconnectFailures                  uint64
	HeartbeatsSent, HeartbeatMisses                uint64
	// HeartbeatRTT is an upper bound (the ACK is seen at the next tick).
	HeartbeatRTT time.Duration
	// Detection is how long the last heartbeat-detected failure went
	// unnoticed at most (from the last ACK to the miss).
	Detection time.Duration
	// FSM is the state machine's full status (timers, reason, flapping).
	FSM fsm.Status
}

// DeviceStatus is the visible state of a device.
type DeviceStatus struct {
	Name   string
	Policy Policy
	Paths  []PathStatus
	// Queued is the I/O waiting for a path, a credit or a backoff.
	Queued int64
	// NoPathFor is how long the device has been without a usable path
	// (0 while it has one).
	NoPathFor time.Duration
	// Lost: every path was lost at dev_loss_tmo and none has been added
	// since; I/O fails at once.
	Lost      bool
	Failovers uint64
	// Reconnecting counts attempts in progress; ReconnectsQueued the ones
	// waiting for their jitter or the concurrency limits.
	Reconnecting, ReconnectsQueued int
	// Stale counts results ignored because their I/O had been reissued;
	// Misuse counts Start calls for a tag out of range or still in progress.
	Stale, Misuse int64
	// Completed and Failed count the I/O the device completed (with
	// success, with an error) on every queue since it was created.
	Completed, Failed uint64
}

// Snapshot returns the device's status (control plane, any goroutine).
func (d *Device) Snapshot() DeviceStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.clk.Now()
	s := DeviceStatus{Name: d.name, Policy: d.policy, Failovers: d.failovers, Lost: d.lost,
		Reconnecting: d.recon.running, ReconnectsQueued: len(d.recon.queue)}
	if !d.noPathSince.IsZero() {
		s.NoPathFor = now.Sub(d.noPathSince)
	}
	for _, q := range d.queues {
		s.Queued += q.ctr.parkedNow.load()
		s.Stale += q.ctr.stale.load()
		s.Misuse += q.ctr.misuse.load()
		s.Completed += uint64(q.ctr.completed.load())
		s.Failed += uint64(q.ctr.failed.load())
	}
	t := d.tab.Load()
	for _, p := range d.paths {
		if p == nil {
			continue
		}
		fs := p.fsm.Status()
		ps := PathStatus{
			ID: p.spec.ID, Target: p.spec.Target, Priority: p.spec.Priority,
			State: fs.State, Since: fs.Since, FSM: fs,
			Usable:      t.paths[p.slot].usable,
			InFlight:    p.ctr.inflight.Load(),
			Latency:     time.Duration(p.ctr.latencyNS.Load()),
			LastError:   p.lastErr,
			Completions: p.ctr.completions.Load(), Errors: p.ctr.errors.Load(), Retries: p.ctr.retries.Load(),
			Reissued: p.ctr.reissued.Load(), Aborts: p.ctr.aborts.Load(),
			Reconnects: p.reconnects, ReconnectFailures: p.reconnectErrs,
			HeartbeatsSent: p.hb.sent, HeartbeatMisses: p.hb.misses, HeartbeatRTT: p.hb.rtt,
			Detection: p.detection,
		}
		for _, a := range t.active {
			ps.Active = ps.Active || int(a) == p.slot
		}
		s.Paths = append(s.Paths, ps)
	}
	return s
}

// Transition is one state change of a path, for the dashboard's feed.
type Transition struct {
	At     time.Time
	Path   string
	From   fsm.State
	To     fsm.State
	Reason string
	// Actions the driver carried out, in order.
	Actions string
}

// recordLocked logs a transition and keeps it in the ring.
func (d *Device) recordLocked(p *path, from fsm.State, acts []fsm.Action, now time.Time) {
	to := p.fsm.State()
	names := ""
	for i, a := range acts {
		if i > 0 {
			names += ","
		}
		names += a.Kind.String()
	}
	reason := ""
	if st := p.fsm.Status(); !st.Reason.IsZero() && to != fsm.Running {
		reason = st.Reason.String()
	}
	if from == to {
		d.log.Debug("path actions", "path", p.spec.ID, "state", to, "actions", names)
		return
	}
	d.log.Info("path transition", "path", p.spec.ID, "from", from, "to", to, "reason", reason, "actions", names)
	d.trans[d.transN%transitionRing] = Transition{At: now, Path: p.spec.ID, From: from, To: to, Reason: reason, Actions: names}
	d.transN++
}

// Transitions returns the recent path transitions, oldest first.
func (d *Device) Transitions() []Transition {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := min(d.transN, transitionRing)
	out := make([]Transition, 0, n)
	for i := d.transN - n; i < d.transN; i++ {
		out = append(out, d.trans[i%transitionRing])
	}
	return out
}
