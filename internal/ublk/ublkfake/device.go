package ublkfake

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
)

type tagState uint8

const (
	tagIdle  tagState = iota // not fetched since the queue was (re)set
	tagArmed                 // FETCH/COMMIT_AND_FETCH pending: ready for a request
	tagOwned                 // a request is with the server
	tagDead                  // aborted
)

type ftag struct {
	state tagState
	ud    uint64
	req   *BlockRequest
	// chunk is the part of req dispatched to this tag (a short completion
	// requeues the rest).
	off int64
	n   int
}

type fqueue struct {
	dev     *device
	id      uint16
	ring    *queueRing
	tid     int // the queue's daemon thread: commands from others get -EINVAL
	tags    []ftag
	descs   []uapi.IODesc
	bufs    [][]byte
	fetched int
	pending []*BlockRequest
}

func (q *fqueue) ready() bool { return q.fetched == len(q.tags) }

func (q *fqueue) owned() int {
	n := 0
	for i := range q.tags {
		if q.tags[i].state == tagOwned {
			n++
		}
	}
	return n
}

// device is one ublk device.
type device struct {
	k         *Kernel
	info      uapi.DevInfo // as negotiated at ADD_DEV
	state     uapi.DevState
	serverPID int32
	params    uapi.Params
	paramsSet bool
	// disk is true between START_DEV and STOP_DEV (or the server's death
	// without recovery): /dev/ublkbN exists.
	disk bool
	// accepting is true while requests are dispatched to the server.
	accepting  bool
	recovering bool
	stopped    bool // STOP_DEV issued: re-armed tags are aborted
	deleting   bool // DEL_DEV(_ASYNC) issued: removed when unreferenced
	// openers hold the disk open from outside the server (md, a mount).
	openers int
	char    *charDev
	queues  []*fqueue
}

func (d *device) infoNow() uapi.DevInfo {
	i := d.info
	i.State = d.state
	i.ServerPID = d.serverPID
	return i
}

func (d *device) allReady() bool {
	for _, q := range d.queues {
		if !q.ready() {
			return false
		}
	}
	return true
}

// referenced reports whether any process still holds the char device or a
// queue ring of d.
func (d *device) referenced() bool {
	if d.char != nil {
		return true
	}
	for _, q := range d.queues {
		if q.ring != nil {
			return true
		}
	}
	return false
}

// resetQueues makes every tag fetchable again (recovery; a new server).
func (d *device) resetQueues() {
	for _, q := range d.queues {
		q.fetched, q.tid = 0, 0
		for i := range q.tags {
			q.tags[i] = ftag{}
		}
	}
}

func bufAddr(b []byte) uint64 {
	if cap(b) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

// serverGone is the kernel noticing the server's exit (§2.1, ≥6.7 timing:
// at once). k.mu held.
func (k *Kernel) serverGone(d *device) {
	if !d.disk || !d.accepting && d.state != uapi.StateLive {
		return
	}
	d.accepting = false
	if d.info.Flags&uapi.FlagUserRecovery != 0 {
		d.state = uapi.StateQuiesced
		if d.info.Flags&uapi.FlagUserRecoveryFailIO != 0 {
			d.state = uapi.StateFailIO
		}
		reissue := d.info.Flags&uapi.FlagUserRecoveryReissue != 0 && d.state == uapi.StateQuiesced
		for _, q := range d.queues {
			var back []*BlockRequest
			for i := range q.tags {
				t := &q.tags[i]
				if t.state != tagOwned {
					continue
				}
				if reissue {
					back = append(back, t.req)
				} else {
					t.req.finish(-int32(unix.EIO))
				}
				t.req = nil
				t.state = tagIdle
			}
			q.pending = append(back, q.pending...)
			if d.state == uapi.StateFailIO {
				for _, r := range q.pending {
					r.finish(-int32(unix.EIO))
				}
				q.pending = q.pending[:0]
			}
		}
	} else {
		// No recovery: del_gendisk; everything fails.
		k.failAll(d, -int32(unix.EIO))
		d.disk = false
		d.state = uapi.StateDead
	}
	k.broadcast()
}

// failAll completes every pending and owned request with res.
func (k *Kernel) failAll(d *device, res int32) {
	for _, q := range d.queues {
		for i := range q.tags {
			t := &q.tags[i]
			if t.state == tagOwned {
				t.req.finish(res)
				t.req = nil
				t.state = tagIdle
			}
		}
		for _, r := range q.pending {
			r.finish(res)
		}
		q.pending = q.pending[:0]
	}
}

// abortArmed completes every armed tag's command with ABORT (-ENODEV).
func (k *Kernel) abortArmed(d *device) {
	for _, q := range d.queues {
		for i := range q.tags {
			t := &q.tags[i]
			if t.state == tagArmed {
				t.state = tagDead
				if q.ring != nil {
					q.ring.post(t.ud, uapi.IOResAbort)
				}
			}
		}
	}
}

// dispatch hands pending requests of q to armed tags. k.mu held.
func (k *Kernel) dispatch(q *fqueue) {
	d := q.dev
	if !d.accepting || q.ring == nil {
		return
	}
	for len(q.pending) > 0 {
		tag := -1
		for i := range q.tags {
			if q.tags[i].state == tagArmed {
				tag = i
				break
			}
		}
		if tag < 0 {
			return
		}
		r := q.pending[0]
		copy(q.pending, q.pending[1:])
		q.pending = q.pending[:len(q.pending)-1]
		t := &q.tags[tag]
		t.state, t.req = tagOwned, r
		t.off = r.Off + int64(r.progress)
		t.n = r.length() - r.progress
		if r.Op == uapi.OpRead || r.Op == uapi.OpWrite {
			t.n = min(t.n, int(d.info.MaxIOBufBytes))
		}
		q.descs[tag] = uapi.IODesc{
			OpFlags:     uint32(r.Op) | uint32(r.Flags),
			NrSectors:   uint32(t.n >> uapi.SectorShift),
			StartSector: uint64(t.off >> uapi.SectorShift),
			Addr:        bufAddr(q.bufs[tag]),
		}
		if r.Op == uapi.OpWrite {
			// Copy mode: the bio's data lands in the server's buffer before
			// the FETCH completes.
			copy(q.bufs[tag][:t.n], r.Data[r.progress:])
		}
		q.ring.post(t.ud, uapi.IOResOK)
	}
}

// commit completes tag's request with res (ublk_complete_rq). k.mu held.
func (k *Kernel) commit(q *fqueue, tag int, res int32) {
	t := &q.tags[tag]
	r := t.req
	t.req = nil
	switch {
	case r.Op != uapi.OpRead && r.Op != uapi.OpWrite:
		r.finish(min(res, 0))
	case res < 0:
		r.finish(res)
	case res == 0 && r.Op == uapi.OpRead:
		r.finish(-int32(unix.EIO))
	default:
		n := min(int(res), t.n)
		if r.Op == uapi.OpRead {
			copy(r.Data[r.progress:r.progress+n], q.bufs[tag][:n])
		}
		r.progress += n
		if r.progress < r.length() {
			// A short count requeues the rest.
			q.pending = append([]*BlockRequest{r}, q.pending...)
			return
		}
		r.finish(int32(r.progress))
	}
}

// Errors of the fake's own API (the modelled kernel answers with errnos).
var (
	// ErrKilled is returned by every operation of a killed process.
	ErrKilled = errors.New("ublkfake: process killed")
	// ErrNoDisk is returned when submitting to a device without a disk.
	ErrNoDisk = errors.New("ublkfake: no such block device")
)

// ctrlConn is a process's /dev/ublk-control.
type ctrlConn struct {
	p      *Process
	closed bool
}

func (c *ctrlConn) Close() error { c.closed = true; return nil }

// Cmd executes one control command the way ublk_ctrl_uring_cmd would.
func (c *ctrlConn) Cmd(ctx context.Context, op uint32, hdr uapi.CtrlCmd, payload []byte) (int32, error) {
	k := c.p.k
	k.mu.Lock()
	defer k.mu.Unlock()
	if c.p.dead || c.closed {
		return 0, ErrKilled
	}
	o, ok := uapi.CtrlOpOf(op)
	enc := "legacy"
	if uapi.IsIoctlEncoded(op) {
		enc = "ioctl"
	}
	var res int32
	switch {
	case !ok:
		res = -int32(unix.EINVAL)
	case uapi.IsIoctlEncoded(op) && k.cfg.Kernel61:
		// 6.1 looks the unknown op up as a device id.
		res = -int32(unix.ENODEV)
	case !uapi.IsIoctlEncoded(op) && k.cfg.NoLegacyOpcodes:
		res = -int32(unix.EOPNOTSUPP)
	case int(hdr.Len) != len(payload):
		k.violate("%v: header len %d != payload %d", o, hdr.Len, len(payload))
		res = -int32(unix.EINVAL)
	default:
		var err error
		res, err = c.exec(ctx, o, hdr, payload)
		if err != nil {
			if ctx.Err() != nil {
				// Like the kernel transport: the command stays in flight.
				c.closed = true
				return 0, fmt.Errorf("%w: %w", ublk.ErrCommandAbandoned, err)
			}
			return 0, err
		}
	}
	k.cmdLog = append(k.cmdLog, o.String()+"("+enc+")="+errnoName(res))
	k.broadcast()
	return res, nil
}

func errnoName(res int32) string {
	if res >= 0 {
		return "0"
	}
	return unix.ErrnoName(unix.Errno(-res))
}

func neg(e unix.Errno) int32 { return -int32(e) }

// exec runs a decoded command. k.mu held (released while blocking).
func (c *ctrlConn) exec(ctx context.Context, op uapi.CtrlOp, hdr uapi.CtrlCmd, payload []byte) (int32, error) {
	k := c.p.k
	if op == uapi.CmdGetFeatures {
		if k.cfg.Kernel61 {
			return neg(unix.ENODEV), nil
		}
		if len(payload) != uapi.FeaturesSize {
			return neg(unix.EINVAL), nil
		}
		le64put(payload, uint64(k.cfg.Features))
		return 0, nil
	}
	if hdr.QueueID != uapi.QueueIDNone && op != uapi.CmdGetQueueAffinity {
		k.violate("%v: queue_id %#x, want 0xffff", op, hdr.QueueID)
		return neg(unix.EINVAL), nil
	}
	if op == uapi.CmdAddDev {
		return k.addDev(hdr, payload), nil
	}
	d, ok := k.devs[hdr.DevID]
	if !ok {
		return neg(unix.ENODEV), nil
	}
	switch op {
	case uapi.CmdGetQueueAffinity:
		if len(payload) == 0 || len(payload)%8 != 0 || hdr.Data >= uint64(len(d.queues)) {
			return neg(unix.EINVAL), nil
		}
		// blk-mq spreads CPUs over queues round robin.
		clear(payload)
		for cpu := range min(runtime.NumCPU(), len(payload)*8) {
			if cpu%len(d.queues) == int(hdr.Data) {
				payload[cpu/8] |= 1 << (cpu % 8)
			}
		}
		return 0, nil
	case uapi.CmdGetDevInfo:
		if len(payload) < uapi.DevInfoSize {
			return neg(unix.EINVAL), nil
		}
		info := d.infoNow()
		info.Put(payload)
		return 0, nil
	case uapi.CmdSetParams:
		return k.setParams(d, payload), nil
	case uapi.CmdGetParams:
		if len(payload) < 8 {
			return neg(unix.EINVAL), nil
		}
		p := d.params
		p.Len = uint32(min(len(payload), uapi.ParamsMaxSize))
		p.Put(payload)
		return 0, nil
	case uapi.CmdStartDev:
		return k.startDev(ctx, d, hdr.Data, c.p)
	case uapi.CmdStopDev:
		return k.stopDev(ctx, d)
	case uapi.CmdDelDev:
		return k.delDev(ctx, d)
	case uapi.CmdDelDevAsync:
		if k.cfg.NoDelAsync {
			return neg(unix.EOPNOTSUPP), nil
		}
		// The id is freed when the last reference goes, not now.
		if d.disk {
			k.failAll(d, -int32(unix.EIO))
			d.disk, d.accepting = false, false
		}
		d.deleting = true
		k.reap(d)
		return 0, nil
	case uapi.CmdStartUserRecovery:
		return k.startRecovery(d), nil
	case uapi.CmdEndUserRecovery:
		return k.endRecovery(ctx, d, hdr.Data)
	}
	return neg(unix.EOPNOTSUPP), nil
}

func (k *Kernel) addDev(hdr uapi.CtrlCmd, payload []byte) int32 {
	info, err := uapi.DecodeDevInfo(payload)
	if err != nil {
		return neg(unix.EINVAL)
	}
	if hdr.DevID != info.DevID {
		k.violate("ADD_DEV: header dev_id %d != info dev_id %d (pitfall 6)", hdr.DevID, info.DevID)
		return neg(unix.EINVAL)
	}
	if info.NrHWQueues == 0 || info.QueueDepth == 0 {
		return neg(unix.EINVAL)
	}
	id := info.DevID
	if id == uapi.DevIDAny {
		for id = 0; k.devs[id] != nil; id++ {
		}
	} else if k.devs[id] != nil {
		return neg(unix.EEXIST)
	}
	info.DevID = id
	info.NrHWQueues = uint16(min(int(info.NrHWQueues), k.cfg.MaxQueues))
	info.QueueDepth = min(info.QueueDepth, uapi.MaxQueueDepth)
	info.MaxIOBufBytes = info.MaxIOBufBytes / uint32(k.cfg.PageSize) * uint32(k.cfg.PageSize)
	if info.MaxIOBufBytes == 0 {
		return neg(unix.EINVAL)
	}
	info.Flags = info.Flags&k.cfg.Features | uapi.FlagURingCmdCompInTask
	info.State = uapi.StateDead
	info.ServerPID = 0
	d := &device{k: k, info: info, state: uapi.StateDead}
	d.queues = make([]*fqueue, info.NrHWQueues)
	for i := range d.queues {
		d.queues[i] = &fqueue{dev: d, id: uint16(i), tags: make([]ftag, info.QueueDepth),
			descs: make([]uapi.IODesc, info.QueueDepth), pending: make([]*BlockRequest, 0, info.QueueDepth)}
	}
	k.devs[id] = d
	info.Put(payload)
	k.broadcast()
	return 0
}

func (k *Kernel) setParams(d *device, payload []byte) int32 {
	if d.disk || d.state != uapi.StateDead {
		return neg(unix.EACCES)
	}
	p, err := uapi.DecodeParams(payload)
	if err != nil || p.Types&uapi.ParamTypeBasic == 0 || p.Types&uapi.ParamTypeDevt != 0 {
		return neg(unix.EINVAL)
	}
	b := p.Basic
	pageShift := uint8(0)
	for 1<<pageShift < k.cfg.PageSize {
		pageShift++
	}
	switch {
	case b.LogicalBSShift < uapi.SectorShift || b.LogicalBSShift > pageShift,
		b.PhysicalBSShift < b.LogicalBSShift,
		b.MaxSectors > d.info.MaxIOBufBytes>>uapi.SectorShift,
		b.DevSectors == 0:
		return neg(unix.EINVAL)
	}
	if p.Types&uapi.ParamTypeDiscard != 0 && (p.Discard.MaxDiscardSegments != 1 || p.Discard.DiscardGranularity == 0) {
		return neg(unix.EINVAL)
	}
	d.params, d.paramsSet = p, true
	return 0
}

func (k *Kernel) startDev(ctx context.Context, d *device, pid uint64, caller *Process) (int32, error) {
	switch {
	case int64(pid) <= 0:
		return neg(unix.EINVAL), nil
	case !d.paramsSet:
		return neg(unix.EINVAL), nil
	case d.disk || d.state != uapi.StateDead:
		return neg(unix.EEXIST), nil
	}
	// START_DEV waits until every tag of every queue has been fetched.
	if err := k.waitForLocked(ctx, func() bool { return d.allReady() || caller.dead }); err != nil {
		return 0, err
	}
	if caller.dead {
		return 0, ErrKilled
	}
	d.serverPID, d.state, d.disk, d.accepting, d.stopped = int32(pid), uapi.StateLive, true, true, false
	k.broadcast()
	if k.cfg.NoPartitionScan {
		return 0, nil
	}
	// add_disk reads the partition table through the new disk: the queues
	// must serve while START_DEV is in progress (pitfall 2).
	scan := NewBlockRequest(uapi.OpRead, 0, make([]byte, scanBytes))
	if err := k.submitLocked(d, scan); err != nil {
		return 0, nil
	}
	k.mu.Unlock()
	_, err := scan.Wait(ctx)
	k.mu.Lock()
	if err != nil {
		return 0, err
	}
	return 0, nil
}

func (k *Kernel) stopDev(ctx context.Context, d *device) (int32, error) {
	d.stopped = true
	if d.disk {
		// del_gendisk: no new requests; those the server owns finish first
		// when it is alive; without a server, everything fails.
		if d.accepting {
			for _, q := range d.queues {
				for _, r := range q.pending {
					r.finish(-int32(unix.EIO))
				}
				q.pending = q.pending[:0]
			}
			if err := k.waitForLocked(ctx, func() bool {
				for _, q := range d.queues {
					if q.owned() > 0 && d.accepting {
						return false
					}
				}
				return true
			}); err != nil {
				return 0, err
			}
		}
		k.failAll(d, -int32(unix.EIO))
		d.disk, d.accepting = false, false
	}
	d.state = uapi.StateDead
	k.abortArmed(d)
	k.broadcast()
	return 0, nil
}

// delDev is DEL_DEV: remove the disk, then wait until the id is freed,
// which needs every reference gone, the disk's openers included.
func (k *Kernel) delDev(ctx context.Context, d *device) (int32, error) {
	if d.referenced() {
		// The server holds references itself: the kernel would wait for
		// ever (uninterruptibly on 6.1). That is the server's bug
		// (pitfalls 5, 8, 9).
		k.violate("DEL_DEV %d while /dev/ublkc%d or a queue ring is still open", d.info.DevID, d.info.DevID)
		return neg(unix.EBUSY), nil
	}
	if d.disk {
		k.failAll(d, -int32(unix.EIO))
		d.disk, d.accepting = false, false
	}
	d.deleting = true
	k.reap(d)
	if err := k.waitForLocked(ctx, func() bool { return k.devs[d.info.DevID] != d }); err != nil {
		return 0, err
	}
	return 0, nil
}

// reap removes a device whose async deletion waits for its last
// reference. k.mu held.
func (k *Kernel) reap(d *device) {
	if d.deleting && !d.referenced() && d.openers == 0 && k.devs[d.info.DevID] == d {
		delete(k.devs, d.info.DevID)
		k.broadcast()
	}
}

func (k *Kernel) startRecovery(d *device) int32 {
	switch {
	case d.info.Flags&uapi.FlagUserRecovery == 0:
		return neg(unix.EINVAL)
	case d.state != uapi.StateQuiesced && d.state != uapi.StateFailIO:
		return neg(unix.EBUSY)
	case d.referenced():
		// The old server's files are not released yet.
		return neg(unix.EBUSY)
	}
	d.resetQueues()
	d.recovering = true
	k.broadcast()
	return 0
}

func (k *Kernel) endRecovery(ctx context.Context, d *device, pid uint64) (int32, error) {
	if !d.recovering || int64(pid) <= 0 {
		return neg(unix.EINVAL), nil
	}
	if err := k.waitForLocked(ctx, d.allReady); err != nil {
		return 0, err
	}
	d.recovering, d.serverPID, d.state, d.accepting = false, int32(pid), uapi.StateLive, true
	for _, q := range d.queues {
		k.dispatch(q)
	}
	k.broadcast()
	return 0, nil
}

func le64put(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}
