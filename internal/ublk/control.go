package ublk

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
)

// Retry timing of START_USER_RECOVERY's EBUSY (the old server still holds
// references, or the kernel has not quiesced the device yet).
const (
	recoveryBackoffMin = 10 * time.Millisecond
	recoveryBackoffMax = 500 * time.Millisecond
	// payloadSize is the off-heap control payload page; the largest payload
	// is GET_PARAMS (uapi.ParamsMaxSize).
	payloadSize = 4096
	// affinityMaskBytes is the cpumask buffer: 1024 CPUs, as unix.CPUSet;
	// the driver wants a multiple of 8 bytes covering nr_cpu_ids.
	affinityMaskBytes = 128
	// stuckAfter is when a control command still waiting is logged.
	stuckAfter = 10 * time.Second
)

// encoding is the control opcode encoding the kernel accepted.
type encoding uint8

const (
	encUnknown encoding = iota
	encIoctl
	encLegacy
)

func (e encoding) String() string {
	switch e {
	case encIoctl:
		return "ioctl"
	case encLegacy:
		return "legacy"
	}
	return "unknown"
}

// Control issues ublk control commands, one at a time. It negotiates the
// opcode encoding (ioctl-encoded first, legacy on failure; research §1.3),
// and caches the GET_FEATURES probe. Safe for concurrent use.
type Control struct {
	drv Driver
	log *slog.Logger

	mu       sync.Mutex
	conn     ControlConn
	payload  []byte // off-heap: 6.1 reads it from an io-wq worker after submit
	free     func() error
	enc      encoding
	probed   bool
	features uapi.Flag
	hasFeat  bool
	// noDelAsync is set once DEL_DEV_ASYNC was refused as unknown.
	noDelAsync bool
	// stuck is set when a command was abandoned in flight (ctx ended): the
	// kernel may still write its payload, so the page is never unmapped.
	stuck bool
}

// NewControl opens the control device of drv.
func NewControl(drv Driver, log *slog.Logger) (*Control, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conn, err := drv.OpenControl()
	if err != nil {
		return nil, &OpError{Op: "open " + uapi.CtrlDevPath, DevID: uapi.DevIDAny, Err: err}
	}
	mem, free, err := allocOffHeap(payloadSize)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return &Control{drv: drv, log: log, conn: conn, payload: mem, free: free}, nil
}

// Close closes the control device. Closing the ring also interrupts a
// command abandoned in flight.
func (c *Control) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	if !c.stuck {
		err = errors.Join(err, c.free())
	}
	c.conn, c.payload = nil, nil
	return err
}

// noteAbandoned records that the transport gave up waiting for a command
// (ctx ended): no further command may use the connection or the page.
func (c *Control) noteAbandoned(err error) {
	if errors.Is(err, ErrCommandAbandoned) {
		c.stuck = true
	}
}

// Driver returns the driver Control talks to.
func (c *Control) Driver() Driver { return c.drv }

// Encoding reports the negotiated control encoding ("ioctl", "legacy" or
// "unknown" before the first successful command).
func (c *Control) Encoding() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enc.String()
}

// cmd issues op for dev with payload bytes [0:n) of the payload page, which
// the caller filled; on success the kernel's output is in the same bytes.
// c.mu is held.
func (c *Control) cmd(ctx context.Context, op uapi.CtrlOp, dev uint32, data uint64, n int) error {
	if c.conn == nil {
		return &OpError{Op: op.String(), DevID: dev, Err: ErrClosed}
	}
	if c.stuck {
		return &OpError{Op: op.String(), DevID: dev, Err: ErrCommandAbandoned}
	}
	if err := ctx.Err(); err != nil {
		return &OpError{Op: op.String(), DevID: dev, Err: err}
	}
	hdr := uapi.CtrlCmd{DevID: dev, QueueID: uapi.QueueIDNone, Len: uint16(n), Data: data}
	var payload []byte
	if n > 0 {
		payload = c.payload[:n]
	}
	t := time.AfterFunc(stuckAfter, func() {
		c.log.Warn("ublk control command still waiting", "op", op.String(), "dev", dev)
	})
	defer t.Stop()
	// Once an encoding worked, it is the kernel's; before that, try ioctl
	// first (LEGACY_OPCODES=n kernels reject legacy) and legacy on any error
	// (6.1 answers an ioctl op with -ENODEV or -EOPNOTSUPP).
	first := op.Ioctl()
	if c.enc == encLegacy && op.HasLegacy() {
		first = op.Legacy()
	}
	res, err := c.conn.Cmd(ctx, first, hdr, payload)
	if err != nil {
		c.noteAbandoned(err)
		return &OpError{Op: op.String(), DevID: dev, Err: err}
	}
	if res >= 0 {
		if c.enc == encUnknown {
			c.enc = encIoctl
		}
		return nil
	}
	if c.enc == encUnknown && op.HasLegacy() {
		res2, err := c.conn.Cmd(ctx, op.Legacy(), hdr, payload)
		if err != nil {
			c.noteAbandoned(err)
			return &OpError{Op: op.String(), DevID: dev, Err: err}
		}
		if res2 >= 0 {
			c.enc = encLegacy
			c.log.Debug("ublk control: kernel takes legacy opcodes", "op", op.String(), "ioctl_res", res)
			return nil
		}
		res = res2
	}
	return &OpError{Op: op.String(), DevID: dev, Err: resErr(res)}
}

// Features returns the kernel's UBLK_F_* support from GET_FEATURES, probed
// once and cached. ok is false on kernels without GET_FEATURES (< 6.5):
// callers then request what they want and read what ADD_DEV grants.
func (c *Control) Features(ctx context.Context) (f uapi.Flag, ok bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.probed {
		return c.features, c.hasFeat, nil
	}
	clear(c.payload[:uapi.FeaturesSize])
	err = c.cmd(ctx, uapi.CmdGetFeatures, 0, 0, uapi.FeaturesSize)
	var errno unix.Errno
	switch {
	case err == nil:
		c.features = uapi.Flag(le64(c.payload))
		c.hasFeat = true
	case errors.As(err, &errno):
		// -ENODEV/-EOPNOTSUPP/-EINVAL: the command does not exist here.
		c.log.Debug("ublk: GET_FEATURES unsupported", "err", err)
	default:
		return 0, false, err
	}
	c.probed = true
	return c.features, c.hasFeat, nil
}

// Add issues ADD_DEV with info (DevID may be uapi.DevIDAny) and returns the
// negotiated copy: the id, the clamped sizes and the flags the kernel kept.
func (c *Control) Add(ctx context.Context, info uapi.DevInfo) (uapi.DevInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	info.Put(c.payload[:uapi.DevInfoSize])
	// The header's dev_id must equal info.dev_id (pitfall 6).
	if err := c.cmd(ctx, uapi.CmdAddDev, info.DevID, 0, uapi.DevInfoSize); err != nil {
		return uapi.DevInfo{}, err
	}
	return uapi.DecodeDevInfo(c.payload)
}

// Info issues GET_DEV_INFO. A missing device is -ENODEV (errors.Is(err, unix.ENODEV)).
func (c *Control) Info(ctx context.Context, id uint32) (uapi.DevInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.payload[:uapi.DevInfoSize])
	if err := c.cmd(ctx, uapi.CmdGetDevInfo, id, 0, uapi.DevInfoSize); err != nil {
		return uapi.DevInfo{}, err
	}
	return uapi.DecodeDevInfo(c.payload)
}

// SetParams issues SET_PARAMS (only before START_DEV; -EACCES after).
func (c *Control) SetParams(ctx context.Context, id uint32, p uapi.Params) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p.Len = uapi.ParamsSize
	clear(c.payload[:uapi.ParamsSize])
	p.Put(c.payload[:uapi.ParamsSize])
	return c.cmd(ctx, uapi.CmdSetParams, id, 0, uapi.ParamsSize)
}

// GetParams issues GET_PARAMS.
func (c *Control) GetParams(ctx context.Context, id uint32) (uapi.Params, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.payload[:uapi.ParamsMaxSize])
	p := uapi.Params{Len: uapi.ParamsMaxSize}
	p.Put(c.payload[:8])
	if err := c.cmd(ctx, uapi.CmdGetParams, id, 0, uapi.ParamsMaxSize); err != nil {
		return uapi.Params{}, err
	}
	return uapi.DecodeParams(c.payload[:uapi.ParamsMaxSize])
}

// Start issues START_DEV. It blocks until every tag of every queue has
// been fetched and the disk is added (partition scan included), so the
// queues must already be running on their own threads (pitfall 2).
func (c *Control) Start(ctx context.Context, id uint32, pid int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd(ctx, uapi.CmdStartDev, id, uint64(pid), 0)
}

// Stop issues STOP_DEV: the disk is deleted and every pending FETCH
// completes with ABORT. The queues must still be serving (pitfall 8).
func (c *Control) Stop(ctx context.Context, id uint32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd(ctx, uapi.CmdStopDev, id, 0, 0)
}

// Del deletes the device. It prefers DEL_DEV_ASYNC (6.9+), which returns
// at once and lets the kernel free the id when the last reference to the
// disk goes (an md array or a prober may still hold it); otherwise DEL_DEV,
// which waits for that (uninterruptibly on 6.1). Either way the char fd,
// descriptor mmaps and rings must be closed first (pitfalls 5, 8, 9).
func (c *Control) Del(ctx context.Context, id uint32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enc != encLegacy && !c.noDelAsync {
		err := c.cmd(ctx, uapi.CmdDelDevAsync, id, 0, 0)
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL) {
			return err
		}
		// Older kernels do not know the command.
		c.noDelAsync = true
	}
	return c.cmd(ctx, uapi.CmdDelDev, id, 0, 0)
}

// StartRecovery issues START_USER_RECOVERY, retrying -EBUSY (the old server
// still holds references, or the kernel has not quiesced the device) with
// backoff until it succeeds or ctx ends.
func (c *Control) StartRecovery(ctx context.Context, id uint32) error {
	backoff := recoveryBackoffMin
	for attempt := 1; ; attempt++ {
		c.mu.Lock()
		err := c.cmd(ctx, uapi.CmdStartUserRecovery, id, 0, 0)
		c.mu.Unlock()
		if !errors.Is(err, unix.EBUSY) {
			return err
		}
		if attempt == 1 {
			c.log.Info("ublk: waiting for the previous server to release the device", "dev", id)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return &OpError{Op: uapi.CmdStartUserRecovery.String(), DevID: id, Err: errors.Join(ctx.Err(), err)}
		case <-t.C:
		}
		backoff = min(2*backoff, recoveryBackoffMax)
	}
}

// QueueAffinity issues GET_QUEUE_AFFINITY: the CPUs whose blk-mq contexts
// map to queue q, where its thread is best run.
func (c *Control) QueueAffinity(ctx context.Context, id uint32, q uint16) (unix.CPUSet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var set unix.CPUSet
	n := affinityMaskBytes
	clear(c.payload[:n])
	if err := c.cmd(ctx, uapi.CmdGetQueueAffinity, id, uint64(q), n); err != nil {
		return set, err
	}
	for cpu := range n * 8 {
		if c.payload[cpu/8]&(1<<(cpu%8)) != 0 {
			set.Set(cpu)
		}
	}
	return set, nil
}

// EndRecovery issues END_USER_RECOVERY with the new server's pid. Like
// Start it blocks until every tag has been fetched.
func (c *Control) EndRecovery(ctx context.Context, id uint32, pid int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd(ctx, uapi.CmdEndUserRecovery, id, uint64(pid), 0)
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}
