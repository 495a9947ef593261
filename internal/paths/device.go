package paths

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// transitionRing is how many recent path transitions Transitions keeps.
const transitionRing = 256

// Device is one logical unit served over up to MaxPaths paths. See the
// package documentation for the split between the control plane (the
// Device's methods) and the data path (Queue).
type Device struct {
	name      string
	log       *slog.Logger
	clk       clock.Clock
	blockSize int
	blocks    uint64

	tab    atomic.Pointer[table]
	queues []*Queue
	qcfg   []QueueConfig

	// mail holds failures the queue threads report (inc<<8 | kind; 0 is
	// empty); kick wakes the control goroutine to read them.
	mail [MaxPaths]atomic.Uint64
	kick chan struct{}
	quit chan struct{}
	wg   sync.WaitGroup

	mu          sync.Mutex
	policy      Policy
	paths       [MaxPaths]*path
	nextOrder   uint64
	nextInc     uint64
	version     uint64
	regs        map[verbs.Device]*devReg
	active      groupKey
	hasActive   bool
	failbackDue time.Time
	fbTimer     clock.Timer
	nprTimer    clock.Timer
	hbTimer     clock.Timer
	noPathSince time.Time
	lost        bool // every path lost at dev_loss_tmo, none added since
	useHeld     bool // no path is eligible: held-down paths carry I/O (publishLocked)
	failWaiting bool // FailWaiting: the device is being removed
	failovers   uint64
	closed      bool
	rng         *rand.Rand
	acts        []fsm.Action
	recon       reconnects
	trans       [transitionRing]Transition
	transN      uint64
}

// path is the control plane's record of one path.
type path struct {
	slot  int
	inc   uint64
	order uint64
	spec  PathSpec
	fsm   *fsm.Path
	timer clock.Timer
	// chans are the path's channels, one per queue, while connected.
	chans     []Channel
	connected bool
	watchStop chan struct{}
	ctr       *pathCounters

	hb            heartbeat
	reconnects    uint64
	reconnectErrs uint64
	detection     time.Duration
	lastErr       string
}

// groupKey identifies a path group (see Grouping).
type groupKey struct {
	prio  int
	order uint64
}

// New returns a device with no paths. Its control goroutine runs until
// Close.
func New(cfg Config) (*Device, error) {
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	if cfg.BlockSize != 512 && cfg.BlockSize != 4096 {
		return nil, fmt.Errorf("%w: block size %d (want 512 or 4096)", ErrBadConfig, cfg.BlockSize)
	}
	if len(cfg.Queues) == 0 {
		return nil, fmt.Errorf("%w: no queues", ErrBadConfig)
	}
	for i, qc := range cfg.Queues {
		if qc.Depth < 1 || qc.Depth > maxTags {
			return nil, fmt.Errorf("%w: queue %d depth %d (want 1..%d)", ErrBadConfig, i, qc.Depth, maxTags)
		}
		if qc.Mem != nil {
			if err := checkQueueMem(i, cfg.BlockSize, qc); err != nil {
				return nil, err
			}
		}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Device{
		name: cfg.Name, log: cfg.Logger.With("device", cfg.Name), clk: cfg.Clock,
		blockSize: cfg.BlockSize, blocks: cfg.Blocks,
		qcfg:   append([]QueueConfig(nil), cfg.Queues...),
		kick:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
		policy: cfg.Policy,
		regs:   make(map[verbs.Device]*devReg),
		rng:    rand.New(rand.NewPCG(cfg.Seed, 0x70617468)),
		acts:   make([]fsm.Action, 0, 16),
		recon:  reconnects{perTarget: make(map[string]int)},
	}
	for i, qc := range d.qcfg {
		d.queues = append(d.queues, newQueue(d, i, qc))
	}
	d.mu.Lock()
	d.publishLocked(d.clk.Now())
	d.armHeartbeatLocked()
	d.mu.Unlock()
	d.wg.Add(1)
	go d.control()
	return d, nil
}

// Queue returns queue i's data path.
func (d *Device) Queue(i int) *Queue { return d.queues[i] }

// NumQueues is the number of queues.
func (d *Device) NumQueues() int { return len(d.queues) }

// control serves the queue threads' reports.
func (d *Device) control() {
	defer d.wg.Done()
	for {
		select {
		case <-d.kick:
			d.drainReports()
		case <-d.quit:
			return
		}
	}
}

// report is called by a queue thread: path slot (incarnation inc) failed
// in a way only the data path sees. It never blocks.
func (d *Device) report(slot int, inc uint64, kind fsm.FailureKind) {
	d.mail[slot].CompareAndSwap(0, inc<<8|uint64(kind))
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

func (d *Device) drainReports() {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.clk.Now()
	for slot := range d.mail {
		v := d.mail[slot].Swap(0)
		if v == 0 {
			continue
		}
		p := d.paths[slot]
		if p == nil || p.inc != v>>8 {
			continue
		}
		kind := fsm.FailureKind(v & 0xff)
		d.stepLocked(p, fsm.Fail(now, kind, "an I/O abort went unanswered"))
	}
}

// AddPath adds a path and connects its channels (one per queue) with
// spec.Connect, on the caller's goroutine. If that first login fails the
// path is added anyway, blocked, and reconnects on schedule (its status
// shows why); the error is returned only for an invalid spec or a
// registration failure.
func (d *Device) AddPath(ctx context.Context, spec PathSpec) error {
	if spec.ID == "" || spec.Connect == nil {
		return &OpError{Op: "add path", Path: spec.ID, Err: fmt.Errorf("%w: a path needs an id and a connector", ErrBadConfig)}
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	if d.findLocked(spec.ID) != nil {
		d.mu.Unlock()
		return &OpError{Op: "add path", Path: spec.ID, Err: ErrPathExists}
	}
	err := d.registerLocked(spec.Device)
	d.mu.Unlock()
	if err != nil {
		return &OpError{Op: "register buffers", Path: spec.ID, Err: err}
	}
	chans, connErr := d.connectAll(ctx, spec)

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.findLocked(spec.ID) != nil {
		closeAll(chans)
		if d.closed {
			return ErrClosed
		}
		return &OpError{Op: "add path", Path: spec.ID, Err: ErrPathExists}
	}
	slot := -1
	for i, p := range d.paths {
		if p == nil {
			slot = i
			break
		}
	}
	if slot < 0 {
		closeAll(chans)
		return &OpError{Op: "add path", Path: spec.ID, Err: ErrTooManyPaths}
	}
	now := d.clk.Now()
	f, err := fsm.New(d.policy.Path, now)
	if err != nil {
		closeAll(chans)
		return &OpError{Op: "add path", Path: spec.ID, Err: err}
	}
	d.nextInc++
	d.nextOrder++
	p := &path{slot: slot, inc: d.nextInc, order: d.nextOrder, spec: spec, fsm: f, ctr: &pathCounters{}}
	d.paths[slot] = p
	d.lost = false
	d.log.Info("path added", "path", spec.ID, "target", spec.Target, "priority", spec.Priority, "slot", slot)
	if connErr != nil {
		p.lastErr = connErr.Error()
		d.stepLocked(p, fsm.Fail(now, fsm.FailureUnspecified, "initial login: "+connErr.Error()))
		return nil
	}
	d.attachLocked(p, chans)
	d.publishLocked(now)
	d.wakeQueues()
	return nil
}

// FailWaiting makes the I/O waiting for a path fail now, and every later
// I/O that finds no usable path fail at once (ErrNoPath), whatever
// no_path_retry says: the device is being removed, and the kernel's removal
// (ublk STOP_DEV) waits for every request to complete. I/O on a usable path
// is not touched.
func (d *Device) FailWaiting() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.failWaiting {
		return
	}
	d.failWaiting = true
	d.publishLocked(d.clk.Now())
	d.wakeQueues()
}

// RemovePath deletes a path: its in-flight I/O is reissued elsewhere, its
// channels are closed.
func (d *Device) RemovePath(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.findLocked(id)
	if p == nil {
		return &OpError{Op: "remove path", Path: id, Err: ErrUnknownPath}
	}
	d.stepLocked(p, fsm.Delete(d.clk.Now()))
	return nil
}

// FailPath takes a path out of service until ReinstatePath (admin).
func (d *Device) FailPath(id, reason string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.findLocked(id)
	if p == nil {
		return &OpError{Op: "fail path", Path: id, Err: ErrUnknownPath}
	}
	d.stepLocked(p, fsm.Fail(d.clk.Now(), fsm.AdminFail, reason))
	return nil
}

// ReinstatePath undoes FailPath, ends a hold-down, clears the flap history
// and reconnects a path out of service at once.
func (d *Device) ReinstatePath(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.findLocked(id)
	if p == nil {
		return &OpError{Op: "reinstate path", Path: id, Err: ErrUnknownPath}
	}
	d.stepLocked(p, fsm.AdminReinstate(d.clk.Now()))
	return nil
}

// ReportFailure feeds a failure the caller detected (trap 65 from the
// subnet manager, a protocol error seen elsewhere) into a path's state
// machine.
func (d *Device) ReportFailure(id string, kind fsm.FailureKind, detail string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.findLocked(id)
	if p == nil {
		return &OpError{Op: "report failure", Path: id, Err: ErrUnknownPath}
	}
	d.stepLocked(p, fsm.Fail(d.clk.Now(), kind, detail))
	return nil
}

// PortEvent routes a local port's asynchronous event: PORT_ERR (and a
// fatal device error) blocks every path through that port at once;
// PORT_ACTIVE starts the reconnect of every path through it that is out of
// service, instead of waiting for its reconnect timer.
func (d *Device) PortEvent(device string, port uint8, kind verbs.AsyncEventKind) {
	switch kind {
	case verbs.EventPortError, verbs.EventDeviceFatal, verbs.EventPortActive:
	default:
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.clk.Now()
	for _, p := range d.paths {
		if p == nil || p.spec.DeviceName != device || (kind != verbs.EventDeviceFatal && p.spec.Port != port) {
			continue
		}
		if kind == verbs.EventPortActive {
			d.stepLocked(p, fsm.PortActive(now))
			continue
		}
		p.detection = 0
		d.stepLocked(p, fsm.Fail(now, fsm.PortError, kind.String()+" on "+device+" port "+fmt.Sprint(port)))
	}
}

// WatchEvents feeds dev's asynchronous events to PortEvent until ctx ends
// or the device's event channel closes.
func (d *Device) WatchEvents(ctx context.Context, dev verbs.Device) {
	for {
		select {
		case ev, ok := <-dev.Events():
			if !ok {
				return
			}
			d.PortEvent(ev.Device, ev.Port, ev.Kind)
		case <-ctx.Done():
			return
		}
	}
}

// SetPolicy replaces the policy at runtime: I/O in flight continues, the
// path timers are reconfigured with the kernel's sysfs semantics, groups
// are recomputed. Nothing changes if p is invalid.
func (d *Device) SetPolicy(p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	now := d.clk.Now()
	old := d.policy
	d.policy = p
	for _, pa := range d.paths {
		if pa == nil {
			continue
		}
		from := pa.fsm.State()
		acts, err := pa.fsm.Reconfigure(p.Path, now, d.acts[:0])
		if err != nil {
			d.policy = old
			return &PolicyError{Field: "path timers", Value: err.Error(), Want: "kernel-valid timers", Err: err}
		}
		d.runActionsLocked(pa, from, acts, now)
	}
	if old.HeartbeatInterval != p.HeartbeatInterval {
		d.armHeartbeatLocked()
	}
	if old.Grouping != p.Grouping {
		d.hasActive = false // group keys of the old grouping mean nothing now
	}
	d.log.Info("policy changed", "policy", p.String())
	d.publishLocked(now)
	d.wakeQueues()
	return nil
}

// Policy returns the policy in force.
func (d *Device) Policy() Policy {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.policy
}

// Failback switches I/O to the best usable group now (for failback manual).
func (d *Device) Failback() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hasActive = false
	d.publishLocked(d.clk.Now())
	d.wakeQueues()
}

// Close stops the control plane, closes every channel and releases the
// buffer registrations. I/O still in progress is not completed: the queue
// threads must have stopped.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	stopTimer(d.hbTimer)
	stopTimer(d.fbTimer)
	stopTimer(d.nprTimer)
	stopTimer(d.recon.timer)
	for _, p := range d.paths {
		if p == nil {
			continue
		}
		stopTimer(p.timer)
		d.detachLocked(p)
	}
	d.mu.Unlock()
	close(d.quit)
	d.wg.Wait()
	var errs []error
	for _, r := range d.regs {
		for _, b := range r.bufs {
			if b != nil {
				errs = append(errs, b.Close())
			}
		}
	}
	return errors.Join(errs...)
}

// Run waits for ctx and then closes the device (for an errgroup).
func (d *Device) Run(ctx context.Context) error {
	<-ctx.Done()
	return d.Close()
}

func stopTimer(t clock.Timer) {
	if t != nil {
		t.Stop()
	}
}

func (d *Device) findLocked(id string) *path {
	for _, p := range d.paths {
		if p != nil && p.spec.ID == id {
			return p
		}
	}
	return nil
}

// devReg is the queues' tag memory registered on one RDMA device.
type devReg struct {
	bufs []verbs.Buffer // per queue; nil while the queue is unbound
	// mrs is replaced, never modified, so published tables stay immutable.
	mrs []memRegion
}

func checkQueueMem(i, blockSize int, qc QueueConfig) error {
	switch {
	case qc.TagSize < blockSize || len(qc.Mem) < qc.Depth*qc.TagSize:
		return fmt.Errorf("%w: queue %d memory %d bytes for %d tags of %d", ErrBadConfig, i, len(qc.Mem), qc.Depth, qc.TagSize)
	case qc.Complete == nil:
		return fmt.Errorf("%w: queue %d has no completion function", ErrBadConfig, i)
	}
	return nil
}

// registerLocked registers every bound queue's tag memory with dev (once
// per device and queue).
func (d *Device) registerLocked(dev verbs.Device) error {
	if dev == nil {
		return nil
	}
	r := d.regs[dev]
	if r == nil {
		r = &devReg{bufs: make([]verbs.Buffer, len(d.qcfg)), mrs: make([]memRegion, len(d.qcfg))}
		d.regs[dev] = r
	}
	var mrs []memRegion
	for i, qc := range d.qcfg {
		if qc.Mem == nil || r.bufs[i] != nil {
			continue
		}
		b, err := dev.Register(qc.Mem[:qc.Depth*qc.TagSize], verbs.AccessData)
		if err != nil {
			return err
		}
		r.bufs[i] = b
		if mrs == nil {
			mrs = append([]memRegion(nil), r.mrs...)
		}
		mrs[i] = memRegion{addr: b.Addr(), rkey: b.RKey(), lkey: b.LKey()}
	}
	if mrs != nil {
		r.mrs = mrs
	}
	return nil
}

// mrsLocked returns the per-queue registrations on dev.
func (d *Device) mrsLocked(dev verbs.Device) []memRegion {
	if r := d.regs[dev]; r != nil {
		return r.mrs
	}
	return make([]memRegion, len(d.qcfg))
}

// BindQueue gives queue i its tag memory, completion function and waker
// when they were not known at New (ublk allocates the buffers when the
// queue starts). The memory is registered with every path's RDMA device.
// Call it on the queue's thread before its first Start.
func (d *Device) BindQueue(i int, qc QueueConfig) error {
	if i < 0 || i >= len(d.queues) {
		return fmt.Errorf("%w: no queue %d", ErrBadConfig, i)
	}
	qc.Depth = d.qcfg[i].Depth
	if err := checkQueueMem(i, d.blockSize, qc); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	d.qcfg[i] = qc
	d.queues[i].cfg = qc
	for dev := range d.regs {
		if err := d.registerLocked(dev); err != nil {
			return &OpError{Op: "register buffers", Path: fmt.Sprint("queue ", i), Err: err}
		}
	}
	d.publishLocked(d.clk.Now())
	return nil
}

// UnbindQueue deregisters queue i's memory from every RDMA device (before
// ublk unmaps it). The queue must have no I/O in progress.
func (d *Device) UnbindQueue(i int) error {
	if i < 0 || i >= len(d.queues) {
		return fmt.Errorf("%w: no queue %d", ErrBadConfig, i)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, r := range d.regs {
		if b := r.bufs[i]; b != nil {
			errs = append(errs, b.Close())
			r.bufs[i] = nil
			mrs := append([]memRegion(nil), r.mrs...)
			mrs[i] = memRegion{}
			r.mrs = mrs
		}
	}
	d.qcfg[i].Mem = nil
	d.qcfg[i].Waker = nil
	d.publishLocked(d.clk.Now())
	return errors.Join(errs...)
}

// connectAll makes one channel per queue; on failure it closes the ones
// made.
func (d *Device) connectAll(ctx context.Context, spec PathSpec) ([]Channel, error) {
	chans := make([]Channel, 0, len(d.queues))
	for q := range d.queues {
		ch, err := spec.Connect(ctx, q)
		if err != nil {
			closeAll(chans)
			return nil, fmt.Errorf("%w: queue %d: %w", ErrConnect, q, err)
		}
		chans = append(chans, ch)
	}
	return chans, nil
}

func closeAll(chans []Channel) {
	for _, ch := range chans {
		_ = ch.Close()
	}
}

// attachLocked installs a path's new channels and watches them.
func (d *Device) attachLocked(p *path, chans []Channel) {
	p.chans = chans
	p.connected = true
	p.hb = heartbeat{}
	stop := make(chan struct{})
	p.watchStop = stop
	slot, inc := p.slot, p.inc
	for _, ch := range chans {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			select {
			case <-ch.Failed():
				d.channelFailed(slot, inc, ch)
			case <-stop:
			}
		}()
	}
}

// detachLocked takes a path's channels away: first the QPs go to the
// error state (no late DMA into the tag buffers), then the queues learn
// that the path is gone (the caller publishes and wakes them) and reissue
// the flushed commands; the channels are closed in the background.
func (d *Device) detachLocked(p *path) {
	if p.chans == nil {
		return
	}
	for _, ch := range p.chans {
		_ = ch.ForceError()
	}
	close(p.watchStop)
	chans := p.chans
	p.chans, p.connected, p.watchStop = nil, false, nil
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		closeAll(chans)
	}()
}

// channelFailed is a channel's Failed firing.
func (d *Device) channelFailed(slot int, inc uint64, ch Channel) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.paths[slot]
	if p == nil || p.inc != inc || !p.connected {
		return
	}
	owned := false
	for _, c := range p.chans {
		owned = owned || c == ch
	}
	if !owned {
		return
	}
	err := ch.Err()
	kind := failureKind(err)
	detail := "channel failed"
	if err != nil {
		detail = err.Error()
	}
	p.lastErr = detail
	d.stepLocked(p, fsm.Fail(d.clk.Now(), kind, detail))
}

// failureKind maps a channel's error to the fsm's failure kind.
func failureKind(err error) fsm.FailureKind {
	switch {
	case errors.Is(err, srp.ErrDisconnected), errors.Is(err, srp.ErrTargetLogout):
		return fsm.CMDisconnect
	case errors.Is(err, srp.ErrProtocol):
		return fsm.ProtocolError
	case errors.Is(err, srp.ErrAbortTimeout):
		return fsm.AbortFailed
	}
	return fsm.QPError
}

// stepLocked feeds ev to p's state machine and carries out the actions.
func (d *Device) stepLocked(p *path, ev fsm.Event) {
	from := p.fsm.State()
	acts := p.fsm.Step(ev, d.acts[:0])
	d.runActionsLocked(p, from, acts, ev.Now)
}

// runActionsLocked executes actions in order (fsm/doc.go): Block before
// FailFast before Remove; then logs the transition, re-arms the path's
// timer and publishes the new table if anything changed.
func (d *Device) runActionsLocked(p *path, from fsm.State, acts []fsm.Action, now time.Time) {
	changed := false
	removed := false
	for _, a := range acts {
		switch a.Kind {
		case fsm.ActionBlock:
			d.detachLocked(p)
			changed = true
		case fsm.ActionFailFast:
			changed = true
		case fsm.ActionScheduleReconnect:
			d.log.Debug("path reconnect scheduled", "path", p.spec.ID, "at", a.At)
		case fsm.ActionStartReconnect:
			d.enqueueReconnectLocked(p, now)
		case fsm.ActionHoldDown:
			d.log.Info("path held down", "path", p.spec.ID, "until", a.At, "flapping", p.fsm.Status().Flapping)
			changed = true
		case fsm.ActionReinstate:
			changed = true
		case fsm.ActionRemove:
			d.detachLocked(p)
			stopTimer(p.timer)
			d.paths[p.slot] = nil
			removed = true
			changed = true
			if !slices.ContainsFunc(d.paths[:], func(q *path) bool { return q != nil }) {
				d.lost = true
				d.log.Warn("every path lost (dev_loss_tmo): I/O fails until a path is added", "path", p.spec.ID)
			}
		}
	}
	if len(acts) > 0 {
		d.recordLocked(p, from, acts, now)
	}
	if !removed {
		d.armPathTimerLocked(p)
	}
	if changed {
		d.publishLocked(now)
		d.wakeQueues()
	}
}

// armPathTimerLocked arms p's timer for the fsm's next deadline.
func (d *Device) armPathTimerLocked(p *path) {
	stopTimer(p.timer)
	p.timer = nil
	at, ok := p.fsm.NextDeadline()
	if !ok || d.closed {
		return
	}
	slot, inc := p.slot, p.inc
	p.timer = d.clk.AfterFunc(at.Sub(d.clk.Now()), func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if q := d.paths[slot]; q != nil && q.inc == inc && !d.closed {
			d.stepLocked(q, fsm.Tick(d.clk.Now()))
		}
	})
}

// wakeQueues wakes every queue thread.
func (d *Device) wakeQueues() {
	for _, qc := range d.qcfg {
		if qc.Waker != nil {
			qc.Waker.Wake()
		}
	}
}
