package fsm

import "time"

// timerID names a Path's deadlines. The order is the tie-break when two are
// due at the same instant: a timer that ends the path's chances
// (fast_io_fail, dev_loss) fires before a reconnect due at the same time.
type timerID uint8

const (
	timerFastIOFail timerID = iota
	timerDevLoss
	timerHoldDown
	timerReconnect
	numTimers
)

type deadline struct {
	at    time.Time
	armed bool
}

// Path is the state machine of one path (one SRP login to one target port
// through one local port): the kernel's srp_rport plus our failure inputs and
// flap damping. It never reads a clock; time comes with each event.
//
// A Path is not safe for concurrent use: one goroutine (the path's driver)
// owns it.
type Path struct {
	cfg   Config
	state State
	since time.Time
	now   time.Time // latest event time seen; events never move it back

	reason       Cause
	firstFailure time.Time
	admin        bool
	flapping     bool

	timers           [numTimers]deadline
	reconnecting     bool
	failedReconnects int
	lastReconnectErr string

	history flapHistory
}

// New returns a Running path. Like srp_rport_add, call it once the first
// login succeeded; if it did not, step a Failure right away (the path goes
// blocked and reconnects on schedule). It returns a *ConfigError if cfg is
// invalid.
func New(cfg Config, now time.Time) (*Path, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Path{
		cfg:     cfg,
		state:   Running,
		since:   now,
		now:     now,
		history: newFlapHistory(cfg.FlapCount),
	}, nil
}

// State returns the current state.
func (p *Path) State() State { return p.state }

// Config returns the configuration in force.
func (p *Path) Config() Config { return p.cfg }

// NextDeadline returns when the driver must step a Tick next (the earliest
// armed timer), or false when no timer is armed. After any Step at now it is
// strictly after now.
func (p *Path) NextDeadline() (time.Time, bool) {
	id, ok := p.earliest()
	if !ok {
		return time.Time{}, false
	}
	return p.timers[id].at, true
}

// Status returns the visible state.
func (p *Path) Status() Status {
	s := Status{
		State:              p.state,
		Since:              p.since,
		Reason:             p.reason,
		FirstFailure:       p.firstFailure,
		Reconnecting:       p.reconnecting,
		FailedReconnects:   p.failedReconnects,
		LastReconnectError: p.lastReconnectErr,
		Flapping:           p.flapping,
		AdminDown:          p.admin,
	}
	if p.cfg.FlapCount > 0 {
		s.RecentFailures = p.history.within(p.now, p.cfg.FlapWindow)
	}
	if t := p.timers[timerFastIOFail]; t.armed {
		s.FastIOFailAt = t.at
	}
	if t := p.timers[timerDevLoss]; t.armed {
		s.DevLossAt = t.at
	}
	if t := p.timers[timerReconnect]; t.armed {
		s.NextReconnect = t.at
	}
	if t := p.timers[timerHoldDown]; t.armed {
		s.HeldDownUntil = t.at
	}
	return s
}

// Step advances the machine by one event and appends the actions the driver
// must carry out, in order, to out. First the timers due at ev.Now fire (in
// due-time order), then the event applies, then any timer it armed that is
// already due (a zero fast_io_fail_tmo) fires. An event older than the
// latest one seen is taken to happen at the latest time: time never runs
// backwards. Step does not allocate when out has room.
func (p *Path) Step(ev Event, out []Action) []Action {
	now := p.advance(ev.Now)
	// A reconnect result belongs to the attempt that was outstanding before
	// this Step. If the reconnect timer fires just now, the driver has not
	// started that attempt yet, so a result in the same Step is stale.
	outstanding := p.reconnecting
	out = p.fireDue(now, out)
	if !outstanding && (ev.Kind == EventReconnectSucceeded || ev.Kind == EventReconnectFailed) {
		return out
	}
	switch ev.Kind {
	case EventFailure:
		if ev.Failure == AdminFail {
			out = p.adminFail(ev, now, out)
		} else {
			out = p.failure(ev, now, out)
		}
	case EventReconnectSucceeded:
		out = p.reconnectSucceeded(now, out)
	case EventReconnectFailed:
		out = p.reconnectFailed(ev, now, out)
	case EventAdminReinstate:
		out = p.adminReinstate(now, out)
	case EventDelete:
		out = p.lose(now, out)
	case EventPortActive:
		out = p.portActive(out)
	}
	// EventTick and unknown kinds only advance time.
	return p.fireDue(now, out)
}

// Reconfigure replaces the configuration at now, with the kernel's sysfs
// semantics (store_reconnect_delay, store_srp_rport_fast_io_fail_tmo,
// store_srp_rport_dev_loss_tmo): the new values are validated as a whole and
// nothing changes if they are invalid; timers already armed keep their due
// time; switching reconnect_delay from off to on while the path is out of
// service schedules a reconnect, switching it off cancels the pending one.
// The flap history keeps its most recent entries.
func (p *Path) Reconfigure(cfg Config, now time.Time, out []Action) ([]Action, error) {
	if err := cfg.Validate(); err != nil {
		return out, err
	}
	now = p.advance(now)
	out = p.fireDue(now, out)
	old := p.cfg
	p.cfg = cfg
	p.history.resize(cfg.FlapCount)
	if cfg.FlapCount == 0 {
		p.flapping = false
	}
	switch {
	case cfg.ReconnectDelay.IsOff():
		p.disarm(timerReconnect)
	case old.ReconnectDelay.IsOff() && p.outOfService() && !p.admin && !p.reconnecting:
		out = p.scheduleReconnect(now.Add(cfg.ReconnectDelay.Duration()), out)
	}
	return p.fireDue(now, out), nil
}

func (p *Path) advance(t time.Time) time.Time {
	if t.After(p.now) {
		p.now = t
	}
	return p.now
}

// outOfService: the transport is down and the path waits for a reconnect
// (the kernel's BLOCKED and FAIL_FAST).
func (p *Path) outOfService() bool { return p.state == Blocked || p.state == FailFast }

func (p *Path) setState(s State, at time.Time) {
	if s != p.state {
		p.state, p.since = s, at
	}
}

func (p *Path) arm(id timerID, at time.Time) { p.timers[id] = deadline{at: at, armed: true} }
func (p *Path) disarm(id timerID)            { p.timers[id] = deadline{} }

func (p *Path) disarmAll() {
	for id := range p.timers {
		p.timers[id] = deadline{}
	}
}

func (p *Path) earliest() (timerID, bool) {
	best := numTimers
	for id := range numTimers {
		t := p.timers[id]
		if t.armed && (best == numTimers || t.at.Before(p.timers[best].at)) {
			best = id
		}
	}
	return best, best != numTimers
}

// fireDue fires every timer due at or before now, earliest first. Each firing
// disarms its timer and arms none that could be due already, so the loop
// ends after at most numTimers rounds.
func (p *Path) fireDue(now time.Time, out []Action) []Action {
	for {
		id, ok := p.earliest()
		if !ok || p.timers[id].at.After(now) {
			return out
		}
		at := p.timers[id].at
		p.disarm(id)
		switch id {
		case timerFastIOFail:
			// rport_fast_io_fail_timedout: only a BLOCKED rport fails fast.
			if p.state == Blocked {
				p.setState(FailFast, at)
				out = append(out, Action{Kind: ActionFailFast})
			}
		case timerDevLoss:
			// rport_dev_loss_timedout: LOST, unblock as TRANSPORT_OFFLINE
			// (fails what still waits), then rport_delete.
			out = p.lose(at, out)
		case timerHoldDown:
			if p.state == HeldDown {
				p.flapping = false
				p.setState(Running, at)
				out = append(out, Action{Kind: ActionReinstate})
			}
		case timerReconnect:
			// srp_reconnect_work -> srp_reconnect_rport.
			if p.outOfService() && !p.reconnecting && !p.admin {
				p.reconnecting = true
				out = append(out, Action{Kind: ActionStartReconnect})
			}
		}
	}
}

// failure is srp_start_tl_fail_timers, extended: every transport failure
// blocks a path in service, whatever the timers (see doc.go).
func (p *Path) failure(ev Event, now time.Time, out []Action) []Action {
	if p.state != Running && p.state != HeldDown {
		// BLOCKED/FAIL_FAST: the timers already count from the first error
		// (queue_delayed_work does not re-arm a pending work). LOST: the
		// kernel returns at once.
		return out
	}
	p.reason = Cause{Kind: ev.Failure, Detail: ev.Detail, At: now}
	p.firstFailure = now
	p.disarm(timerHoldDown)
	p.setState(Blocked, now)
	out = append(out, Action{Kind: ActionBlock})
	p.noteFailure(now)
	if !p.cfg.ReconnectDelay.IsOff() {
		out = p.scheduleReconnect(now.Add(p.cfg.ReconnectDelay.Duration()), out)
	}
	if !p.cfg.FastIOFailTmo.IsOff() {
		p.arm(timerFastIOFail, now.Add(p.cfg.FastIOFailTmo.Duration()))
	}
	if !p.cfg.DevLossTmo.IsOff() {
		p.arm(timerDevLoss, now.Add(p.cfg.DevLossTmo.Duration()))
	}
	return out
}

// noteFailure records a failure that took the path out of service and
// decides whether it is flapping.
func (p *Path) noteFailure(now time.Time) {
	if p.cfg.FlapCount == 0 {
		return
	}
	p.history.record(now)
	if p.history.within(now, p.cfg.FlapWindow) >= p.cfg.FlapCount {
		p.flapping = true
	}
}

func (p *Path) scheduleReconnect(at time.Time, out []Action) []Action {
	p.arm(timerReconnect, at)
	return append(out, Action{Kind: ActionScheduleReconnect, At: at})
}

// adminFail takes the path out of service until AdminReinstate: no
// reconnects, no timers (the admin owns the path now).
func (p *Path) adminFail(ev Event, now time.Time, out []Action) []Action {
	if p.state == Lost || p.admin {
		return out
	}
	p.reason = Cause{Kind: AdminFail, Detail: ev.Detail, At: now}
	p.admin = true
	p.firstFailure = time.Time{}
	p.disarmAll()
	if p.state == Running || p.state == HeldDown {
		out = append(out, Action{Kind: ActionBlock})
	}
	if p.state != FailFast {
		p.setState(FailFast, now)
		out = append(out, Action{Kind: ActionFailFast})
	}
	return out
}

// reconnectSucceeded is the success branch of srp_reconnect_rport: cancel
// fast_io_fail and dev_loss, zero failed_reconnects, RUNNING.
func (p *Path) reconnectSucceeded(now time.Time, out []Action) []Action {
	if !p.reconnecting || !p.outOfService() {
		// Stale: no attempt is outstanding, or the path was lost meanwhile
		// (the driver dropped it on ActionRemove).
		return out
	}
	p.reconnecting = false
	if p.admin {
		// The admin failed the path while the attempt ran: drop the new
		// connection.
		return append(out, Action{Kind: ActionBlock})
	}
	p.failedReconnects = 0
	p.firstFailure = time.Time{}
	p.disarm(timerFastIOFail)
	p.disarm(timerDevLoss)
	p.disarm(timerReconnect)
	hold := p.cfg.Settle
	if p.flapping {
		hold = max(hold, p.cfg.HoldDown)
	}
	if hold > 0 {
		until := now.Add(hold)
		p.arm(timerHoldDown, until)
		p.setState(HeldDown, now)
		return append(out, Action{Kind: ActionHoldDown, At: until})
	}
	p.setState(Running, now)
	return append(out, Action{Kind: ActionReinstate})
}

// reconnectFailed is the failure side of srp_reconnect_rport and
// srp_reconnect_work.
func (p *Path) reconnectFailed(ev Event, now time.Time, out []Action) []Action {
	if !p.reconnecting || !p.outOfService() {
		return out
	}
	p.reconnecting = false
	p.failedReconnects++
	p.lastReconnectErr = ev.Detail
	if p.admin {
		return out
	}
	if p.state == Blocked && p.cfg.FastIOFailTmo.IsOff() && p.cfg.DevLossTmo.IsOff() {
		// srp_reconnect_rport, "invoked with fast_io_fail and dev_loss
		// off": the kernel left such a port RUNNING on the error and fails
		// it fast now; ours is blocked, so it goes blocked -> fail-fast.
		p.setState(FailFast, now)
		out = append(out, Action{Kind: ActionFailFast})
	}
	if !p.cfg.ReconnectDelay.IsOff() {
		out = p.scheduleReconnect(now.Add(Backoff(p.cfg.ReconnectDelay, p.failedReconnects)), out)
	}
	return out
}

// adminReinstate undoes an admin fail and the flap history, ends a hold-down
// and asks for a reconnect now if the path is out of service.
func (p *Path) adminReinstate(now time.Time, out []Action) []Action {
	if p.state == Lost {
		return out
	}
	wasAdmin := p.admin
	p.admin = false
	p.flapping = false
	p.history.reset()
	switch p.state {
	case HeldDown:
		p.disarm(timerHoldDown)
		p.setState(Running, now)
		out = append(out, Action{Kind: ActionReinstate})
	case Blocked, FailFast:
		if wasAdmin && !p.cfg.DevLossTmo.IsOff() {
			// The admin fail stopped the timers; a reinstated path whose
			// target is gone must still be lost in time. Count anew.
			p.firstFailure = now
			p.arm(timerDevLoss, now.Add(p.cfg.DevLossTmo.Duration()))
		}
		if !p.reconnecting {
			p.disarm(timerReconnect)
			p.reconnecting = true
			out = append(out, Action{Kind: ActionStartReconnect})
		}
	}
	return out
}

// portActive starts the pending reconnect of a path out of service now:
// its port is back, so waiting out reconnect_delay (or its backoff) only
// lengthens the outage. The admin's paths and a running attempt are left
// alone; the failure count and the timers stay as they are.
func (p *Path) portActive(out []Action) []Action {
	if !p.outOfService() || p.admin || p.reconnecting || p.cfg.ReconnectDelay.IsOff() {
		return out
	}
	p.disarm(timerReconnect)
	p.reconnecting = true
	return append(out, Action{Kind: ActionStartReconnect})
}

// lose is rport_dev_loss_timedout and, for EventDelete, srp_stop_rport_timers:
// whatever waits for the path fails, then the path is removed.
func (p *Path) lose(at time.Time, out []Action) []Action {
	switch p.state {
	case Lost:
		return out
	case Running, HeldDown:
		out = append(out, Action{Kind: ActionBlock})
	case Blocked:
		out = append(out, Action{Kind: ActionFailFast})
	}
	p.disarmAll()
	p.reconnecting = false
	p.setState(Lost, at)
	return append(out, Action{Kind: ActionRemove})
}
