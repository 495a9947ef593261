package ublk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
)

// Defaults and limits of a DeviceSpec.
const (
	DefaultQueues           = 1
	DefaultDepth            = 128
	DefaultMaxIO            = 512 << 10
	DefaultLogicalBlockSize = 512
	maxQueues               = 64
	minLogicalBlockSize     = 512
)

// DeviceSpec describes a device to create or recover.
type DeviceSpec struct {
	// ID is the ublk device id to ask for (/dev/ublkb<ID>), or uapi.DevIDAny.
	ID     uint32
	Queues int
	Depth  int
	// MaxIO is the largest request in bytes and the size of each tag's buffer.
	MaxIO int
	// LogicalBlockSize and PhysicalBlockSize are powers of two from 512 to
	// the page size; PhysicalBlockSize 0 means LogicalBlockSize.
	LogicalBlockSize  int
	PhysicalBlockSize int
	// Size in bytes, a multiple of LogicalBlockSize.
	Size int64
	// Device attributes.
	ReadOnly, Rotational, VolatileCache, FUA bool
	// Discard enables DISCARD and WRITE_ZEROES with this granularity in
	// bytes (0 = LogicalBlockSize) when Discard is true.
	Discard            bool
	DiscardGranularity int
	// Recovery requests USER_RECOVERY|USER_RECOVERY_REISSUE: a crashed server
	// leaves the device quiesced and a new one recovers it; in-flight I/O is
	// reissued (writes may run twice, pitfall 17).
	Recovery bool
	// LockMemory mlocks the per-tag buffers (best effort; pitfall 15).
	LockMemory bool
	// PinQueues runs each queue thread on the CPUs the kernel maps to that
	// queue (GET_QUEUE_AFFINITY), as ublksrv does; best effort.
	PinQueues bool
	// QueueMemory, when set, supplies each queue's tag buffers: queue q's
	// tag t uses QueueMemory[q][t*MaxIO:(t+1)*MaxIO]. Each must be off-heap
	// (AllocQueueMemory) and hold Depth*MaxIO bytes; the caller unmaps it
	// after the device is stopped or detached. It lets a caller register the
	// memory (RDMA) before the device exists. Otherwise each queue maps its own.
	QueueMemory [][]byte
	Handler     Handler
	Logger      *slog.Logger
}

func (s *DeviceSpec) withDefaults(pageSize int) DeviceSpec {
	c := *s
	if c.Queues == 0 {
		c.Queues = DefaultQueues
	}
	if c.Depth == 0 {
		c.Depth = DefaultDepth
	}
	if c.MaxIO == 0 {
		c.MaxIO = DefaultMaxIO
	}
	if c.LogicalBlockSize == 0 {
		c.LogicalBlockSize = DefaultLogicalBlockSize
	}
	if c.PhysicalBlockSize == 0 {
		c.PhysicalBlockSize = c.LogicalBlockSize
	}
	if c.DiscardGranularity == 0 {
		c.DiscardGranularity = c.LogicalBlockSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	_ = pageSize
	return c
}

// Validate checks the spec (after defaults) against the driver's rules.
func (s *DeviceSpec) Validate(pageSize int) error {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("%w: %s = %v, want %s", ErrInvalidSpec, field, v, want)
	}
	pow2 := func(n int) bool { return n > 0 && n&(n-1) == 0 }
	switch {
	case s.Handler == nil:
		return fmt.Errorf("%w: Handler is nil", ErrInvalidSpec)
	case s.Queues < 1 || s.Queues > maxQueues:
		return bad("Queues", s.Queues, fmt.Sprintf("1..%d", maxQueues))
	case s.Depth < 1 || s.Depth > uapi.MaxQueueDepth:
		return bad("Depth", s.Depth, fmt.Sprintf("1..%d", uapi.MaxQueueDepth))
	case s.MaxIO < pageSize || s.MaxIO%pageSize != 0:
		return bad("MaxIO", s.MaxIO, fmt.Sprintf("a multiple of the page size %d", pageSize))
	case !pow2(s.LogicalBlockSize) || s.LogicalBlockSize < minLogicalBlockSize || s.LogicalBlockSize > pageSize:
		return bad("LogicalBlockSize", s.LogicalBlockSize, fmt.Sprintf("a power of two in 512..%d", pageSize))
	case !pow2(s.PhysicalBlockSize) || s.PhysicalBlockSize < s.LogicalBlockSize:
		return bad("PhysicalBlockSize", s.PhysicalBlockSize, "a power of two >= LogicalBlockSize")
	case s.Size <= 0 || s.Size%int64(s.LogicalBlockSize) != 0:
		return bad("Size", s.Size, "a positive multiple of LogicalBlockSize")
	case s.Discard && (!pow2(s.DiscardGranularity) || s.DiscardGranularity < s.LogicalBlockSize):
		return bad("DiscardGranularity", s.DiscardGranularity, "a power of two >= LogicalBlockSize")
	case s.QueueMemory != nil && len(s.QueueMemory) < s.Queues:
		return bad("len(QueueMemory)", len(s.QueueMemory), fmt.Sprintf(">= Queues (%d)", s.Queues))
	}
	for q, m := range s.QueueMemory {
		if len(m) < s.Depth*s.MaxIO {
			return bad(fmt.Sprintf("len(QueueMemory[%d])", q), len(m), fmt.Sprintf(">= Depth*MaxIO (%d)", s.Depth*s.MaxIO))
		}
	}
	return nil
}

// params builds SET_PARAMS' payload: basic always, discard when enabled.
func (s *DeviceSpec) params(maxIO int) uapi.Params {
	p := uapi.Params{Types: uapi.ParamTypeBasic}
	shift := func(n int) uint8 { return uint8(bits.TrailingZeros(uint(n))) }
	b := &p.Basic
	b.LogicalBSShift = shift(s.LogicalBlockSize)
	b.PhysicalBSShift = shift(s.PhysicalBlockSize)
	b.IOMinShift = b.PhysicalBSShift
	b.IOOptShift = b.PhysicalBSShift
	b.MaxSectors = uint32(maxIO >> uapi.SectorShift)
	b.DevSectors = uint64(s.Size >> uapi.SectorShift)
	if s.ReadOnly {
		b.Attrs |= uapi.AttrReadOnly
	}
	if s.Rotational {
		b.Attrs |= uapi.AttrRotational
	}
	if s.VolatileCache {
		b.Attrs |= uapi.AttrVolatileCache
	}
	if s.FUA {
		b.Attrs |= uapi.AttrFUA
	}
	if s.Discard {
		p.Types |= uapi.ParamTypeDiscard
		p.Discard = uapi.ParamDiscard{
			DiscardGranularity:    uint32(s.DiscardGranularity),
			MaxDiscardSectors:     b.MaxSectors,
			MaxWriteZeroesSectors: b.MaxSectors,
			MaxDiscardSegments:    1, // the driver accepts only 1
		}
	}
	return p
}

// Device is a ublk device served by this process: its queues run on their
// own locked threads from Create/Recover until Stop or Detach.
type Device struct {
	ctl  *Control
	drv  Driver
	log  *slog.Logger
	id   uint32
	info uapi.DevInfo
	spec DeviceSpec

	maxIO     int
	char      CharDev
	queues    []*Queue
	recovered bool

	mu      sync.Mutex
	running int
	errs    []error
	done    chan struct{}
	closed  bool
}

// Open serves spec.ID: when a device with that id exists and can be
// recovered (USER_RECOVERY and QUIESCED, FAIL_IO, or LIVE with a dead
// server), it is recovered; a leftover device that was never started or was
// stopped is deleted and added again; otherwise a new device is added.
func Open(ctx context.Context, ctl *Control, spec DeviceSpec) (*Device, error) {
	if spec.Logger == nil {
		spec.Logger = slog.New(slog.DiscardHandler)
	}
	if spec.ID != uapi.DevIDAny {
		info, err := ctl.Info(ctx, spec.ID)
		switch {
		case errors.Is(err, unix.ENODEV):
		case err != nil:
			return nil, err
		default:
			act, why := recoveryAction(info, ctl.drv)
			spec.Logger.Info("ublk: device exists", "dev", spec.ID, "state", info.State.String(), "pid", info.ServerPID, "action", act, "why", why)
			switch act {
			case actRecover:
				return Recover(ctx, ctl, spec)
			case actReplace:
				if err := ctl.Del(ctx, spec.ID); err != nil {
					return nil, err
				}
			case actRefuse:
				return nil, &OpError{Op: "open", DevID: spec.ID, Err: fmt.Errorf("%w (%s)", ErrDeviceBusy, why)}
			}
		}
	}
	return Create(ctx, ctl, spec)
}

type action string

const (
	actRecover action = "recover"
	actReplace action = "delete and add"
	actRefuse  action = "refuse"
)

// recoveryAction decides what to do with an existing device (research §3.7).
func recoveryAction(info uapi.DevInfo, drv Driver) (action, string) {
	// Our own pid as the owner is a previous incarnation (a container's
	// pid 1 restarts with the same pid): this process does not serve it.
	ownerDead := info.ServerPID <= 0 || info.ServerPID == drv.PID() || !drv.PIDAlive(info.ServerPID)
	hasRecovery := info.Flags&uapi.FlagUserRecovery != 0
	switch info.State {
	case uapi.StateQuiesced, uapi.StateFailIO:
		if hasRecovery {
			return actRecover, "server gone, device waits for recovery"
		}
	case uapi.StateLive:
		if !ownerDead {
			return actRefuse, "server process is alive"
		}
		if hasRecovery {
			return actRecover, "server process is dead; the kernel quiesces the device"
		}
		return actRefuse, "server dead but the device has no USER_RECOVERY; the kernel removes its disk"
	case uapi.StateDead:
		if ownerDead {
			return actReplace, "device added but not started, or stopped"
		}
		return actRefuse, "device is being set up by a live process"
	}
	return actRefuse, "unexpected state " + info.State.String()
}

// Create adds a new device and starts serving it (research §1.7 "Create").
func Create(ctx context.Context, ctl *Control, spec DeviceSpec) (*Device, error) {
	pageSize := ctl.drv.PageSize()
	spec = spec.withDefaults(pageSize)
	if err := spec.Validate(pageSize); err != nil {
		return nil, err
	}
	flags := uapi.FlagCmdIoctlEncode
	if spec.Recovery {
		flags |= uapi.FlagsRecoveryWithReissue
	}
	if feat, ok, err := ctl.Features(ctx); err != nil {
		return nil, err
	} else if ok {
		flags &= feat
		if spec.Recovery && feat&uapi.FlagUserRecovery == 0 {
			spec.Logger.Warn("ublk: kernel lacks USER_RECOVERY; the device will not survive a restart", "features", feat.String())
		}
	}
	info, err := ctl.Add(ctx, uapi.DevInfo{
		NrHWQueues: uint16(spec.Queues), QueueDepth: uint16(spec.Depth), MaxIOBufBytes: uint32(spec.MaxIO),
		DevID: spec.ID, Flags: flags,
	})
	if err != nil {
		return nil, err
	}
	spec.Logger.Info("ublk: device added", "dev", info.DevID, "queues", info.NrHWQueues, "depth", info.QueueDepth,
		"max_io", info.MaxIOBufBytes, "flags", info.Flags.String(), "control", ctl.Encoding())
	d := newDevice(ctl, spec, info)
	if err := ctl.SetParams(ctx, d.id, spec.params(d.maxIO)); err != nil {
		return nil, errors.Join(err, ctl.Del(context.WithoutCancel(ctx), d.id))
	}
	if err := d.serve(ctx, func(ctx context.Context) error { return ctl.Start(ctx, d.id, ctl.drv.PID()) }); err != nil {
		return nil, errors.Join(err, d.abandon(ctx, true))
	}
	return d, nil
}

// Recover takes over an existing device left by a previous server
// (research §1.7 "Restart"): START_USER_RECOVERY (retrying EBUSY until ctx
// ends), queues, END_USER_RECOVERY. The device's queue count, depth and
// buffer size are the kernel's, whatever spec says.
func Recover(ctx context.Context, ctl *Control, spec DeviceSpec) (*Device, error) {
	pageSize := ctl.drv.PageSize()
	spec = spec.withDefaults(pageSize)
	info, err := ctl.Info(ctx, spec.ID)
	if err != nil {
		return nil, err
	}
	if info.Flags&uapi.FlagUserRecovery == 0 {
		return nil, &OpError{Op: "recover", DevID: spec.ID, Err: ErrNoRecovery}
	}
	spec.Queues, spec.Depth, spec.MaxIO = int(info.NrHWQueues), int(info.QueueDepth), int(info.MaxIOBufBytes)
	if err := spec.Validate(pageSize); err != nil {
		return nil, err
	}
	if err := ctl.StartRecovery(ctx, spec.ID); err != nil {
		return nil, err
	}
	d := newDevice(ctl, spec, info)
	d.recovered = true
	if err := d.serve(ctx, func(ctx context.Context) error { return ctl.EndRecovery(ctx, d.id, ctl.drv.PID()) }); err != nil {
		return nil, errors.Join(err, d.abandon(ctx, false))
	}
	spec.Logger.Info("ublk: device recovered", "dev", d.id)
	return d, nil
}

func newDevice(ctl *Control, spec DeviceSpec, info uapi.DevInfo) *Device {
	d := &Device{ctl: ctl, drv: ctl.drv, log: spec.Logger, id: info.DevID, info: info, spec: spec,
		maxIO: int(info.MaxIOBufBytes), done: make(chan struct{})}
	d.queues = make([]*Queue, info.NrHWQueues)
	fetch, commit := uapi.IOFetchReq.Legacy(), uapi.IOCommitAndFetchReq.Legacy()
	if info.Flags&uapi.FlagCmdIoctlEncode != 0 {
		fetch, commit = uapi.IOFetchReq.Ioctl(), uapi.IOCommitAndFetchReq.Ioctl()
	}
	for i := range d.queues {
		d.queues[i] = &Queue{dev: d, id: uint16(i), depth: int(info.QueueDepth), handler: spec.Handler,
			fetchOp: fetch, commitOp: commit, efd: -1}
	}
	return d
}

// serve opens the char device, starts every queue on its own thread, waits
// until all have submitted their FETCHes, then runs begin (START_DEV or
// END_USER_RECOVERY) while the queues serve (the partition scan).
func (d *Device) serve(ctx context.Context, begin func(context.Context) error) error {
	if d.spec.PinQueues {
		for _, q := range d.queues {
			set, err := d.ctl.QueueAffinity(ctx, d.id, q.id)
			if err != nil {
				d.log.Warn("ublk: no queue affinity; queue threads float", "dev", d.id, "queue", q.id, "err", err)
				break
			}
			q.affinity = &set
		}
	}
	char, err := d.drv.OpenCharDev(ctx, d.id)
	if err != nil {
		return &OpError{Op: "open " + uapi.CharDevPrefix + fmt.Sprint(d.id), DevID: d.id, Err: err}
	}
	d.char = char
	ready := make(chan error, len(d.queues))
	d.running = len(d.queues)
	for _, q := range d.queues {
		go q.run(ready)
	}
	var setupErr error
	for range d.queues {
		setupErr = errors.Join(setupErr, <-ready)
	}
	if setupErr != nil {
		return fmt.Errorf("%w: %w", ErrQueueSetup, setupErr)
	}
	return begin(ctx)
}

// abandon cleans up after a failed Create (stop=true: STOP and DEL the new
// device) or Recover (leave the device quiesced for another attempt).
func (d *Device) abandon(ctx context.Context, del bool) error {
	ctx = context.WithoutCancel(ctx)
	var errs []error
	if del && d.char != nil {
		// STOP_DEV aborts the pending FETCHes so the queues exit.
		errs = append(errs, d.ctl.Stop(ctx, d.id))
	}
	// Queues whose FETCHes were not aborted leave on their own.
	for _, q := range d.queues {
		q.requestDetach()
	}
	<-d.waitQueuesIfStarted()
	errs = append(errs, d.closeChar())
	if del {
		errs = append(errs, d.ctl.Del(ctx, d.id))
	}
	return errors.Join(errs...)
}

func (d *Device) waitQueuesIfStarted() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running == 0 && !d.closed {
		d.closed = true
		close(d.done)
	}
	return d.done
}

func (d *Device) closeChar() error {
	if d.char == nil {
		return nil
	}
	err := d.char.Close()
	d.char = nil
	return err
}

// queueDone is called by each queue goroutine as it exits.
func (d *Device) queueDone(q *Queue, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.errs = append(d.errs, fmt.Errorf("queue %d: %w", q.id, err))
	}
	d.running--
	if d.running == 0 && !d.closed {
		d.closed = true
		close(d.done)
	}
}

// noteQueueError records a command the kernel refused (queue thread; rare).
func (d *Device) noteQueueError(qid, tag uint16, res int32) {
	d.log.Error("ublk: I/O command refused", "dev", d.id, "queue", qid, "tag", tag, "errno", resErr(res))
	d.mu.Lock()
	defer d.mu.Unlock()
	d.errs = append(d.errs, &OpError{Op: fmt.Sprintf("queue %d tag %d", qid, tag), DevID: d.id, Err: resErr(res)})
}

// ID is the device id (/dev/ublkb<ID>).
func (d *Device) ID() uint32 { return d.id }

// Info is the device info as negotiated at ADD_DEV (or read at recovery).
func (d *Device) Info() uapi.DevInfo { return d.info }

// Recovered reports whether the device was taken over from a previous server.
func (d *Device) Recovered() bool { return d.recovered }

// BlockPath is the block device node.
func (d *Device) BlockPath() string { return uapi.BlockDevPrefix + fmt.Sprint(d.id) }

// Queues returns the device's queues.
func (d *Device) Queues() []*Queue { return d.queues }

// TagBuffer returns the buffer of tag t of queue q.
func (d *Device) TagBuffer(q, t int) []byte { return d.queues[q].bufs[t] }

// Done is closed when every queue thread has exited.
func (d *Device) Done() <-chan struct{} { return d.done }

// Err returns why queues exited abnormally (after Done).
func (d *Device) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return errors.Join(d.errs...)
}

// Stop stops and deletes the device (research §1.7 "Graceful stop"):
// STOP_DEV while the queues still serve, wait for every tag's ABORT, close
// rings, unmap descriptors and buffers, close the char device, DEL_DEV.
// Users of /dev/ublkbN must have closed it (del_gendisk waits for them).
func (d *Device) Stop(ctx context.Context) error {
	errStop := d.ctl.Stop(ctx, d.id)
	if errStop != nil {
		// The queues may not get their ABORTs: make them leave anyway.
		for _, q := range d.queues {
			q.requestDetach()
		}
	}
	select {
	case <-d.done:
	case <-ctx.Done():
		return errors.Join(errStop, &OpError{Op: "wait for queues", DevID: d.id, Err: ctx.Err()})
	}
	errClose := d.closeChar()
	errDel := d.ctl.Del(ctx, d.id)
	return errors.Join(errStop, d.Err(), errClose, errDel)
}

// Detach stops serving without STOP_DEV: each queue leaves once its handler
// owns no request, and everything is closed. A device with USER_RECOVERY is
// then quiesced by the kernel and waits (I/O blocks) for a successor to
// recover it; without it the kernel removes the disk. When ctx ends first
// (the handler keeps requests: I/O waiting for a path), the queues leave
// anyway and the requests are left to the kernel (ErrRequestsLeft): with
// USER_RECOVERY_REISSUE the next server gets them again, as after a crash.
func (d *Device) Detach(ctx context.Context) error {
	for _, q := range d.queues {
		q.requestDetach()
	}
	var left error
	select {
	case <-d.done:
	case <-ctx.Done():
		for _, q := range d.queues {
			q.requestAbandon()
		}
		t := time.NewTimer(abandonWait)
		defer t.Stop()
		select {
		case <-d.done:
		case <-t.C:
			return &OpError{Op: "detach", DevID: d.id, Err: fmt.Errorf("queues still running %v after they were told to leave: %w", abandonWait, ctx.Err())}
		}
		left = &OpError{Op: "detach", DevID: d.id, Err: ErrRequestsLeft}
	}
	if err := errors.Join(d.Err(), d.closeChar()); err != nil {
		return errors.Join(left, err)
	}
	return left
}

// abandonWait bounds how long Detach waits for queues told to leave at once
// (each wakes on its eventfd within one loop iteration).
const abandonWait = 2 * time.Second

// waitBackoff sleeps d or until ctx ends.
func waitBackoff(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
