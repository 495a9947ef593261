package ublkfake

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
)

// Feature sets of the kernels the project meets.
const (
	// Lab612Features is GET_FEATURES of the lab VM's Debian 6.12 kernel.
	Lab612Features = uapi.Flag(0x1fe)
	// Features61 is what 6.1's ADD_DEV keeps (no GET_FEATURES there).
	Features61 = uapi.FlagURingCmdCompInTask | uapi.FlagNeedGetData | uapi.FlagUserRecovery | uapi.FlagUserRecoveryReissue
	// scanBytes is the size of the partition-table read START_DEV issues.
	scanBytes = 4096
	// defaultMaxQueues stands for nr_cpu_ids.
	defaultMaxQueues = 4
)

// Config selects the kernel the fake behaves like.
type Config struct {
	// Features is what GET_FEATURES reports and ADD_DEV masks flags to
	// (default Lab612Features). Ignored with Kernel61.
	Features uapi.Flag
	// Kernel61 models 6.1: ioctl-encoded opcodes are unknown (-ENODEV),
	// GET_FEATURES does not exist, flags are masked to Features61.
	Kernel61 bool
	// NoLegacyOpcodes models CONFIG_BLKDEV_UBLK_LEGACY_OPCODES=n.
	NoLegacyOpcodes bool
	// MaxQueues stands for nr_cpu_ids, the clamp of nr_hw_queues (default 4).
	MaxQueues int
	// PageSize defaults to the host's.
	PageSize int
	// NoPartitionScan skips the read START_DEV issues through the new disk
	// before returning.
	NoPartitionScan bool
	// NoDelAsync models 6.4–6.8: DEL_DEV_ASYNC is unknown (-EOPNOTSUPP).
	NoDelAsync bool
}

// Kernel is a deterministic in-memory model of ublk_drv's rules
// (research §1.5, §1.6, §2.1). It hands out Processes, each a ublk.Driver,
// and offers a block-layer side (Submit, Do) that sends requests through
// the served device. Rule breaks by the server are answered as the kernel
// would (an errno) and also recorded as violations, so tests can assert
// there were none. Safe for concurrent use.
type Kernel struct {
	cfg Config

	mu         sync.Mutex
	devs       map[uint32]*device
	procs      map[int32]*Process
	waitCh     chan struct{} // closed on the next state change, if anyone waits
	violations []string
	cmdLog     []string
}

// New returns a fake kernel.
func New(cfg Config) *Kernel {
	if cfg.Features == 0 {
		cfg.Features = Lab612Features
	}
	if cfg.Kernel61 {
		cfg.Features = Features61
	}
	if cfg.MaxQueues == 0 {
		cfg.MaxQueues = defaultMaxQueues
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = os.Getpagesize()
	}
	return &Kernel{cfg: cfg, devs: map[uint32]*device{}, procs: map[int32]*Process{}}
}

// Process returns the process with that pid, creating it. A killed pid
// cannot come back.
func (k *Kernel) Process(pid int32) *Process {
	k.mu.Lock()
	defer k.mu.Unlock()
	p, ok := k.procs[pid]
	if !ok {
		p = &Process{k: k, pid: pid}
		k.procs[pid] = p
	}
	return p
}

// Kill models SIGKILL of pid: its control, char device and rings stop
// working, its char fd is released at once, and every device it served
// loses its server (§2.1). Its rings count as references until the process's
// queue goroutines close them, so START_USER_RECOVERY answers -EBUSY until
// then.
func (k *Kernel) Kill(pid int32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p, ok := k.procs[pid]
	if !ok || p.dead {
		return
	}
	p.dead = true
	for _, d := range k.devs {
		if d.char != nil && d.char.proc == p {
			d.char.closed = true
			d.char = nil
			k.reap(d)
		}
		for _, q := range d.queues {
			if q.ring != nil && q.ring.proc == p {
				q.ring.wake()
			}
		}
		if d.serverPID == pid {
			k.serverGone(d)
		}
	}
	k.broadcast()
}

// Violations returns the rule breaks seen so far.
func (k *Kernel) Violations() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.violations...)
}

// CommandLog returns the control commands issued, as "OP(encoding)=res".
func (k *Kernel) CommandLog() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.cmdLog...)
}

// Info returns a device's info as GET_DEV_INFO would.
func (k *Kernel) Info(id uint32) (uapi.DevInfo, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	d, ok := k.devs[id]
	if !ok {
		return uapi.DevInfo{}, false
	}
	return d.infoNow(), true
}

// Params returns a device's params.
func (k *Kernel) Params(id uint32) (uapi.Params, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	d, ok := k.devs[id]
	if !ok {
		return uapi.Params{}, false
	}
	return d.params, true
}

// DeviceIDs lists the existing devices.
func (k *Kernel) DeviceIDs() []uint32 {
	k.mu.Lock()
	defer k.mu.Unlock()
	ids := make([]uint32, 0, len(k.devs))
	for id := range k.devs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// WaitState blocks until device id is in state st (or ctx ends).
func (k *Kernel) WaitState(ctx context.Context, id uint32, st uapi.DevState) error {
	return k.waitFor(ctx, func() bool {
		d, ok := k.devs[id]
		return ok && d.state == st
	})
}

// WaitCommand blocks until the control log has entry (as CommandLog
// spells it, e.g. "START_USER_RECOVERY(ioctl)=EBUSY").
func (k *Kernel) WaitCommand(ctx context.Context, entry string) error {
	return k.waitFor(ctx, func() bool { return slices.Contains(k.cmdLog, entry) })
}

// WaitDeleting blocks until device id has been deleted (DEL_DEV or
// DEL_DEV_ASYNC issued) but still exists because something references it.
func (k *Kernel) WaitDeleting(ctx context.Context, id uint32) error {
	return k.waitFor(ctx, func() bool { d, ok := k.devs[id]; return ok && d.deleting })
}

// WaitGone blocks until device id no longer exists.
func (k *Kernel) WaitGone(ctx context.Context, id uint32) error {
	return k.waitFor(ctx, func() bool { _, ok := k.devs[id]; return !ok })
}

// waitFor blocks until cond (evaluated under k.mu) holds. k.mu not held.
func (k *Kernel) waitFor(ctx context.Context, cond func() bool) error {
	for {
		k.mu.Lock()
		if cond() {
			k.mu.Unlock()
			return nil
		}
		ch := k.waitChLocked()
		k.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// waitForLocked is waitFor with k.mu held on entry and on return.
func (k *Kernel) waitForLocked(ctx context.Context, cond func() bool) error {
	for !cond() {
		ch := k.waitChLocked()
		k.mu.Unlock()
		select {
		case <-ctx.Done():
			k.mu.Lock()
			return ctx.Err()
		case <-ch:
		}
		k.mu.Lock()
	}
	return nil
}

func (k *Kernel) waitChLocked() chan struct{} {
	if k.waitCh == nil {
		k.waitCh = make(chan struct{})
	}
	return k.waitCh
}

// broadcast wakes waiters; without waiters it costs nothing (I/O path).
func (k *Kernel) broadcast() {
	if k.waitCh != nil {
		close(k.waitCh)
		k.waitCh = nil
	}
}

func (k *Kernel) violate(format string, args ...any) {
	k.violations = append(k.violations, fmt.Sprintf(format, args...))
}

// Process is one fake process: a ublk.Driver.
type Process struct {
	k    *Kernel
	pid  int32
	dead bool // under k.mu
}

var _ ublk.Driver = (*Process)(nil)

// PID is the process id.
func (p *Process) PID() int32 { return p.pid }

// PIDAlive reports whether pid is a live process of this kernel.
func (p *Process) PIDAlive(pid int32) bool {
	p.k.mu.Lock()
	defer p.k.mu.Unlock()
	o, ok := p.k.procs[pid]
	return ok && !o.dead
}

// PageSize is the configured page size.
func (p *Process) PageSize() int { return p.k.cfg.PageSize }

// OpenControl opens the fake /dev/ublk-control.
func (p *Process) OpenControl() (ublk.ControlConn, error) {
	p.k.mu.Lock()
	defer p.k.mu.Unlock()
	if p.dead {
		return nil, ErrKilled
	}
	return &ctrlConn{p: p}, nil
}

// OpenCharDev opens /dev/ublkc<id> exclusively, waiting while another
// holder has it (-EBUSY in the kernel; the real driver retries too).
func (p *Process) OpenCharDev(ctx context.Context, id uint32) (ublk.CharDev, error) {
	k := p.k
	k.mu.Lock()
	defer k.mu.Unlock()
	var c *charDev
	err := k.waitForLocked(ctx, func() bool {
		d, ok := k.devs[id]
		if p.dead || !ok {
			return true
		}
		if d.char == nil {
			c = &charDev{k: k, proc: p, dev: d}
			d.char = c
			return true
		}
		return false
	})
	switch {
	case err != nil:
		return nil, err
	case p.dead:
		return nil, ErrKilled
	case c == nil:
		return nil, unix.ENOENT
	}
	return c, nil
}
