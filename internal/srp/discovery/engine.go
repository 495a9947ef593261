package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/mad"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// Defaults of Config.
const (
	// DefaultRescanInterval is srp_daemon_port@.service's -R 60.
	DefaultRescanInterval = 60 * time.Second
	// DefaultTrapDelay is how long after trap 64 the new port is queried:
	// srp_daemon sleeps 100 ms to let the target's agent come up.
	DefaultTrapDelay = 100 * time.Millisecond
	// DefaultEventBuffer is the capacity of the Events channel.
	DefaultEventBuffer = 256
	// workBuffer bounds the queued trap-driven scans; past it the engine
	// rescans everything instead (srp_daemon keeps five and does the same).
	workBuffer = 16
)

// traps are the traps the engine subscribes to on every port: 64 and 144
// as srp_daemon, plus 65 (GID out of service) for the multipath layer.
var traps = []uint16{mad.TrapGIDInService, mad.TrapGIDOutOfService, mad.TrapCapMaskChange}

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// TargetFound: a target the rules allow was found, or found again
	// after its GID went out of service.
	TargetFound EventKind = iota + 1
	// TargetGone: a scan no longer finds a target it found before.
	TargetGone
	// GIDOutOfService: the SM reported the GID out of service (trap 65):
	// every path to it should enter blocked at once.
	GIDOutOfService
	// GIDInService: the SM reported the GID in service (trap 64); a scan
	// of it follows after Config.TrapDelay.
	GIDInService
	// PortError and PortActive relay the local port's async events (the
	// multipath layer also watches them itself).
	PortError
	PortActive
	// ScanDone: a full scan of Port finished (Err says what failed).
	ScanDone
)

var eventKindNames = [...]string{
	TargetFound:     "target-found",
	TargetGone:      "target-gone",
	GIDOutOfService: "gid-out-of-service",
	GIDInService:    "gid-in-service",
	PortError:       "port-error",
	PortActive:      "port-active",
	ScanDone:        "scan-done",
}

func (k EventKind) String() string {
	if int(k) < len(eventKindNames) && eventKindNames[k] != "" {
		return eventKindNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one discovery event.
type Event struct {
	Kind EventKind
	// Target is set for TargetFound and TargetGone.
	Target Target
	// GID is set for GIDOutOfService and GIDInService.
	GID verbs.GID
	// Port is the local port the event concerns.
	Port PortRef
	// Err is set for a ScanDone that failed (partly).
	Err error
	// Time is when the engine learnt it (its clock).
	Time time.Time
}

func (e Event) String() string {
	switch e.Kind {
	case TargetFound, TargetGone:
		return fmt.Sprintf("%v %v %v", e.Kind, e.Port, e.Target)
	case GIDOutOfService, GIDInService:
		return fmt.Sprintf("%v %v %v", e.Kind, e.Port, e.GID)
	case ScanDone:
		return fmt.Sprintf("%v %v err=%v", e.Kind, e.Port, e.Err)
	}
	return fmt.Sprintf("%v %v", e.Kind, e.Port)
}

// Config configures an Engine.
type Config struct {
	Fabric  verbs.Fabric
	Options Options
	// RescanInterval is the period of full rescans; 0 means
	// DefaultRescanInterval, a negative value disables them.
	RescanInterval time.Duration
	// TrapDelay is the wait between trap 64 and the scan of its GID; 0
	// means DefaultTrapDelay, negative means none.
	TrapDelay time.Duration
	// EventBuffer is the capacity of Events; 0 means DefaultEventBuffer.
	EventBuffer int
	Clock       clock.Clock
	Logger      *slog.Logger
}

// Engine keeps discovering: a full scan of every port at start, every
// RescanInterval, and on PORT_ACTIVE, LID, P_Key, GID or SM change and
// client reregister; a scan of one remote port on trap 64 (GID in
// service) and trap 144 (capability change); and at once, without a scan,
// GIDOutOfService on trap 65. It reports through Events.
type Engine struct {
	cfg  Config
	opts Options
	clk  clock.Clock
	log  *slog.Logger
	tid  atomic.Uint64

	events  chan Event
	async   chan verbs.AsyncEvent
	work    chan workItem
	rescan  chan struct{}
	tick    chan struct{}
	started atomic.Bool

	mu       sync.Mutex
	targets  map[Key]*known
	timers   []clock.Timer
	stopping bool
}

// known is a target the engine reported found.
type known struct {
	t            Target
	outOfService bool // trap 65 named its GID since it was last found
}

// workKind is a scan queued by a trap or an event.
type workKind uint8

const (
	workGID workKind = iota + 1 // trap 64: scan the port with this GID
	workLID                     // trap 144: scan the port with this LID
)

type workItem struct {
	kind workKind
	port PortRef
	gid  verbs.GID
	lid  uint16
}

// New returns an engine; Run starts it.
func New(cfg Config) (*Engine, error) {
	if cfg.Fabric == nil {
		return nil, &OpError{Op: "new engine", Err: fmt.Errorf("no fabric: %w", ErrNoPorts)}
	}
	if cfg.RescanInterval == 0 {
		cfg.RescanInterval = DefaultRescanInterval
	}
	if cfg.TrapDelay == 0 {
		cfg.TrapDelay = DefaultTrapDelay
	}
	if cfg.EventBuffer <= 0 {
		cfg.EventBuffer = DefaultEventBuffer
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Options.Logger == nil {
		cfg.Options.Logger = cfg.Logger
	}
	return &Engine{
		cfg:     cfg,
		opts:    cfg.Options.withDefaults(),
		clk:     cfg.Clock,
		log:     cfg.Logger,
		events:  make(chan Event, cfg.EventBuffer),
		async:   make(chan verbs.AsyncEvent, cfg.EventBuffer),
		work:    make(chan workItem, workBuffer),
		rescan:  make(chan struct{}, 1),
		tick:    make(chan struct{}, 1),
		targets: map[Key]*known{},
	}, nil
}

// Events delivers the engine's events in the order it learnt them per
// source. The consumer must keep reading: the engine blocks on a full
// channel (nothing is dropped). Closed when Run returns.
func (e *Engine) Events() <-chan Event { return e.events }

// Rescan asks for a full rescan of every port (coalesced; non-blocking).
func (e *Engine) Rescan() {
	select {
	case e.rescan <- struct{}{}:
	default:
	}
}

// Targets returns the targets currently known and allowed, sorted.
func (e *Engine) Targets() []Target {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Target, 0, len(e.targets))
	for _, k := range e.targets {
		out = append(out, k.t)
	}
	SortTargets(out)
	return out
}

// Run opens the selected ports, subscribes to the traps, scans, and keeps
// scanning until ctx ends; then it unsubscribes (best effort, on active
// ports), closes what it opened, waits for its goroutines and closes
// Events. It may be called once. It fails only if nothing can be scanned:
// no InfiniBand port and no static target.
func (e *Engine) Run(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return &OpError{Op: "run", Err: errors.New("engine already started")}
	}
	defer close(e.events)
	ports, devs, openErr := openPorts(e.cfg.Fabric, &e.opts)
	if openErr != nil {
		e.log.Warn("discovery: some ports not opened", "err", openErr)
	}
	if len(ports) == 0 && len(e.opts.Static) == 0 {
		_ = closeAll(ports, devs)
		return errors.Join(ErrNoPorts, openErr)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	byRef := map[PortRef]*openPort{}
	for i := range ports {
		p := &ports[i]
		byRef[p.ref] = p
		wg.Go(func() { e.receiveReports(runCtx, p) })
	}
	for _, d := range devs {
		wg.Go(func() { e.forwardEvents(runCtx, d) })
	}

	e.announceStatic(runCtx)
	err := e.loop(runCtx, ports, byRef)

	e.mu.Lock()
	e.stopping = true
	for _, t := range e.timers {
		t.Stop()
	}
	e.mu.Unlock()
	e.unsubscribe(context.WithoutCancel(ctx), ports)
	cancel()
	closeErr := closeAll(ports, devs)
	wg.Wait()
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return errors.Join(err, closeErr)
	}
	return closeErr
}

// announceStatic reports the static targets the rules allow.
func (e *Engine) announceStatic(ctx context.Context) {
	var st []Target
	for _, t := range e.opts.Static {
		t.Static = true
		st = append(st, t)
	}
	for _, t := range applyRules(st, e.opts.Rules) {
		e.mu.Lock()
		e.targets[t.Key()] = &known{t: t}
		e.mu.Unlock()
		e.emit(ctx, Event{Kind: TargetFound, Target: t, Port: t.Local, Time: e.clk.Now()})
	}
}

// loop is the engine's scanning goroutine: it owns the scans (one at a
// time, through the ports' MAD ports) and the set of found targets.
func (e *Engine) loop(ctx context.Context, ports []openPort, byRef map[PortRef]*openPort) error {
	var queue []workItem
	full := map[PortRef]bool{}
	all := func() {
		for _, p := range ports {
			full[p.ref] = true
		}
	}
	all()
	var timer clock.Timer
	arm := func() {
		if e.cfg.RescanInterval > 0 {
			timer = e.clk.AfterFunc(e.cfg.RescanInterval, func() {
				select {
				case e.tick <- struct{}{}:
				default:
				}
			})
		}
	}
	arm()
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	// always is ready at once: selected while work is pending, so that
	// events and traps interleave with the scans.
	always := make(chan struct{})
	close(always)
	for {
		var ready <-chan struct{}
		if len(queue) > 0 || len(full) > 0 {
			ready = always
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-e.async:
			e.onAsync(ctx, ev, byRef, full)
		case w := <-e.work:
			queue = append(queue, w)
		case <-e.rescan:
			all()
		case <-e.tick:
			all()
			arm()
		case <-ready:
			// Targeted scans first: they answer traps.
			if len(queue) > 0 {
				w := queue[0]
				queue = queue[1:]
				if p := byRef[w.port]; p != nil && !full[w.port] {
					e.scanOne(ctx, p, w)
				}
				continue
			}
			ref := nextPort(ports, full)
			delete(full, ref)
			e.scanFull(ctx, byRef[ref])
		}
	}
}

// nextPort picks the first port (in open order) with a full scan pending.
func nextPort(ports []openPort, full map[PortRef]bool) PortRef {
	for _, p := range ports {
		if full[p.ref] {
			return p.ref
		}
	}
	for ref := range full {
		return ref
	}
	return PortRef{}
}

// onAsync turns a device event into work: a rescan of the port for every
// change of its addressing, partitions or SM; PORT_ERR is only relayed.
func (e *Engine) onAsync(ctx context.Context, ev verbs.AsyncEvent, byRef map[PortRef]*openPort, full map[PortRef]bool) {
	ref := PortRef{Device: ev.Device, Port: ev.Port}
	if byRef[ref] == nil {
		return
	}
	e.log.Info("discovery: port event", "port", ref.String(), "event", ev.Kind.String())
	switch ev.Kind {
	case verbs.EventPortError:
		e.emit(ctx, Event{Kind: PortError, Port: ref, Time: ev.Time})
	case verbs.EventPortActive:
		e.emit(ctx, Event{Kind: PortActive, Port: ref, Time: ev.Time})
		full[ref] = true
	case verbs.EventLIDChange, verbs.EventPKeyChange, verbs.EventSMChange, verbs.EventClientReregister,
		verbs.EventGIDChange:
		full[ref] = true
	}
}

func (e *Engine) scanner(p *openPort) *scanner {
	return &scanner{ref: p.ref, dev: p.dev, mp: p.mp, opts: &e.opts, log: e.log, tid: &e.tid}
}

// scanFull subscribes the port to the traps (again: after an SM change or
// a reregister the SM has forgotten them) and scans the whole subnet.
func (e *Engine) scanFull(ctx context.Context, p *openPort) {
	s := e.scanner(p)
	var errs []error
	if err := s.begin(); err != nil {
		e.emit(ctx, Event{Kind: ScanDone, Port: p.ref, Err: err, Time: e.clk.Now()})
		return
	}
	if err := s.subscribe(ctx, traps, true); err != nil {
		e.log.Warn("discovery: trap subscription failed", "port", p.ref.String(), "err", err)
		errs = append(errs, err)
	}
	res := s.full(ctx)
	errs = append(errs, res.err)
	if ctx.Err() != nil {
		return
	}
	failed := res.failed
	if res.err != nil && res.targets == nil && failed == nil {
		// The subnet could not be listed: nothing is known to be gone.
		e.emit(ctx, Event{Kind: ScanDone, Port: p.ref, Err: errors.Join(errs...), Time: e.clk.Now()})
		return
	}
	e.reconcile(ctx, p.ref, res.targets, func(t *Target) bool { return !slices.Contains(failed, t.DGID) })
	e.emit(ctx, Event{Kind: ScanDone, Port: p.ref, Err: errors.Join(errs...), Time: e.clk.Now()})
}

// scanOne scans the one remote port a trap named.
func (e *Engine) scanOne(ctx context.Context, p *openPort, w workItem) {
	s := e.scanner(p)
	if err := s.begin(); err != nil {
		e.log.Info("discovery: trap scan skipped", "port", p.ref.String(), "err", err)
		return
	}
	pkeys, err := s.localPKeys()
	if err != nil {
		e.log.Info("discovery: trap scan skipped", "port", p.ref.String(), "err", err)
		return
	}
	lid := w.lid
	if w.kind == workGID {
		if lid, err = s.lidOfGID(ctx, w.gid); err != nil {
			e.log.Info("discovery: GID not resolved", "port", p.ref.String(), "gid", w.gid.String(), "err", err)
			return
		}
	}
	rp, isDM, err := s.remoteByLID(ctx, lid)
	if err != nil {
		e.log.Info("discovery: LID not resolved", "port", p.ref.String(), "lid", lid, "err", err)
		return
	}
	var found []Target
	if isDM {
		if found, err = s.scanRemote(ctx, rp, pkeys); err != nil {
			e.log.Info("discovery: remote scan failed", "port", p.ref.String(), "lid", lid, "err", err)
			return
		}
	}
	scope := func(t *Target) bool { return t.DLID == lid }
	if isDM {
		g := rp.gid()
		scope = func(t *Target) bool { return t.DGID == g }
	}
	e.reconcile(ctx, p.ref, found, scope)
}

// reconcile merges one scan's findings into the known set: within scope
// (the part of the subnet the scan covered) every known target not found
// is gone; every found target that is new, or was out of service, is
// (again) found.
func (e *Engine) reconcile(ctx context.Context, ref PortRef, found []Target, scope func(*Target) bool) {
	found = applyRules(found, e.opts.Rules)
	now := e.clk.Now()
	var evs []Event
	e.mu.Lock()
	seen := map[Key]bool{}
	for _, t := range found {
		k := t.Key()
		seen[k] = true
		old := e.targets[k]
		e.targets[k] = &known{t: t}
		if old == nil || old.outOfService {
			evs = append(evs, Event{Kind: TargetFound, Target: t, Port: ref, Time: now})
		}
	}
	for k, kn := range e.targets {
		if kn.t.Local != ref || kn.t.Static || seen[k] || !scope(&kn.t) {
			continue
		}
		delete(e.targets, k)
		evs = append(evs, Event{Kind: TargetGone, Target: kn.t, Port: ref, Time: now})
	}
	e.mu.Unlock()
	for _, ev := range evs {
		e.log.Info("discovery: "+ev.Kind.String(), "port", ref.String(), "target", ev.Target.String())
		e.emit(ctx, ev)
	}
}

// emit delivers ev unless ctx ends first.
func (e *Engine) emit(ctx context.Context, ev Event) {
	select {
	case e.events <- ev:
	case <-ctx.Done():
	}
}

// forwardEvents relays a device's async events to the loop.
func (e *Engine) forwardEvents(ctx context.Context, d verbs.Device) {
	for {
		select {
		case ev, ok := <-d.Events():
			if !ok {
				return
			}
			select {
			case e.async <- ev:
			case <-ctx.Done():
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// receiveReports answers and handles the trap Reports arriving on one
// port, on its own goroutine so that trap 65 never waits for a scan.
func (e *Engine) receiveReports(ctx context.Context, p *openPort) {
	for {
		b, from, err := p.mp.Recv(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, verbs.ErrClosed) {
				e.log.Warn("discovery: receiving traps stopped", "port", p.ref.String(), "err", err)
			}
			return
		}
		e.onReport(ctx, p, b, from)
	}
}

// onReport acts on a Report's Notice, then acknowledges it with a
// ReportResp (the body echoed, as srp_daemon does). The event goes first so
// that trap 65 never waits for a send.
func (e *Engine) onReport(ctx context.Context, p *openPort, b []byte, from verbs.MADAddr) {
	m, err := mad.DecodeSA(b)
	if err != nil || m.Method != mad.MethodReport || m.AttrID != mad.AttrNotice {
		e.log.Debug("discovery: ignoring unsolicited MAD", "port", p.ref.String(), "err", err)
		return
	}
	defer func() {
		resp := m
		resp.Method = mad.MethodReportResp
		if _, err := p.mp.Send(ctx, resp.Marshal(), from, e.opts.MADTimeout); err != nil {
			e.log.Info("discovery: ReportResp not sent", "port", p.ref.String(), "err", err)
		}
	}()
	n, err := mad.DecodeNotice(m.Data)
	if err != nil || !n.IsGeneric {
		e.log.Info("discovery: bad notice", "port", p.ref.String(), "err", err)
		return
	}
	now := e.clk.Now()
	switch n.TrapNum {
	case mad.TrapGIDOutOfService:
		g := n.GID()
		e.mu.Lock()
		for _, kn := range e.targets {
			if kn.t.Local == p.ref && kn.t.DGID == g {
				kn.outOfService = true
			}
		}
		e.mu.Unlock()
		e.log.Info("discovery: trap 65, GID out of service", "port", p.ref.String(), "gid", g.String())
		e.emit(ctx, Event{Kind: GIDOutOfService, GID: g, Port: p.ref, Time: now})
	case mad.TrapGIDInService:
		g := n.GID()
		e.log.Info("discovery: trap 64, GID in service", "port", p.ref.String(), "gid", g.String())
		e.later(workItem{kind: workGID, port: p.ref, gid: g})
		e.emit(ctx, Event{Kind: GIDInService, GID: g, Port: p.ref, Time: now})
	case mad.TrapCapMaskChange:
		lid, _ := n.CapChange()
		e.log.Info("discovery: trap 144, capability change", "port", p.ref.String(), "lid", lid)
		e.queue(workItem{kind: workLID, port: p.ref, lid: lid})
	default:
		e.log.Debug("discovery: ignoring trap", "port", p.ref.String(), "trap", n.TrapNum)
	}
}

// later queues w after TrapDelay.
func (e *Engine) later(w workItem) {
	if e.cfg.TrapDelay < 0 {
		e.queue(w)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping {
		return
	}
	var t clock.Timer
	t = e.clk.AfterFunc(e.cfg.TrapDelay, func() {
		e.queue(w)
		e.mu.Lock()
		e.timers = slices.DeleteFunc(e.timers, func(x clock.Timer) bool { return x == t })
		e.mu.Unlock()
	})
	e.timers = append(e.timers, t)
}

// queue hands w to the loop; when the queue is full the loop rescans
// everything instead.
func (e *Engine) queue(w workItem) {
	select {
	case e.work <- w:
	default:
		e.Rescan()
	}
}

// unsubscribe cancels the trap subscriptions of the active ports.
func (e *Engine) unsubscribe(ctx context.Context, ports []openPort) {
	o := e.opts
	o.MADRetries = 1
	for i := range ports {
		s := e.scanner(&ports[i])
		s.opts = &o
		if s.begin() != nil {
			continue
		}
		if err := s.subscribe(ctx, traps, false); err != nil {
			e.log.Info("discovery: unsubscribe failed", "port", ports[i].ref.String(), "err", err)
		}
	}
}
