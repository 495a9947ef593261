package ublkfake

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/leakcheck"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

const (
	pid   = 100
	depth = 2
	maxIO = 4096
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// raw drives the fake through the Driver seam only, without package ublk's
// logic, to check the rules themselves.
type raw struct {
	t    *testing.T
	k    *Kernel
	p    *Process
	ctl  ublk.ControlConn
	page []byte
}

func newRaw(t *testing.T, cfg Config) *raw {
	k := New(cfg)
	p := k.Process(pid)
	ctl, err := p.OpenControl()
	if err != nil {
		t.Fatal(err)
	}
	return &raw{t: t, k: k, p: p, ctl: ctl, page: make([]byte, 256)}
}

func (r *raw) cmd(op uapi.CtrlOp, hdr uapi.CtrlCmd, n int) int32 {
	r.t.Helper()
	hdr.Len = uint16(n)
	res, err := r.ctl.Cmd(ctx(r.t), op.Ioctl(), hdr, r.page[:n])
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

func dev(id uint32) uapi.CtrlCmd { return uapi.CtrlCmd{DevID: id, QueueID: uapi.QueueIDNone} }

func (r *raw) add(id uint32) int32 {
	info := uapi.DevInfo{NrHWQueues: 1, QueueDepth: depth, MaxIOBufBytes: maxIO, DevID: id, Flags: uapi.FlagsRecoveryWithReissue}
	info.Put(r.page)
	return r.cmd(uapi.CmdAddDev, dev(id), uapi.DevInfoSize)
}

func (r *raw) setParams(id uint32) int32 {
	p := uapi.Params{Len: uapi.ParamsSize, Types: uapi.ParamTypeBasic,
		Basic: uapi.ParamBasic{LogicalBSShift: 9, PhysicalBSShift: 9, MaxSectors: maxIO >> 9, DevSectors: 1 << 20}}
	clear(r.page)
	p.Put(r.page[:uapi.ParamsSize])
	return r.cmd(uapi.CmdSetParams, dev(id), uapi.ParamsSize)
}

// queue opens queue 0 of id with off-heap-like buffers (heap is fine for
// the fake) and returns the ring.
func (r *raw) queue(id uint32) (ublk.CharDev, ublk.QueueRing, [][]byte) {
	r.t.Helper()
	c, err := r.p.OpenCharDev(ctx(r.t), id)
	if err != nil {
		r.t.Fatal(err)
	}
	bufs := [][]byte{make([]byte, maxIO), make([]byte, maxIO)}
	q, err := c.OpenQueue(ublk.QueueConfig{ID: 0, Depth: depth, Entries: 4, Buffers: bufs})
	if err != nil {
		r.t.Fatal(err)
	}
	return c, q, bufs
}

func fetch(q ublk.QueueRing, bufs [][]byte, tag uint16) {
	q.PrepIO(uapi.IOFetchReq.Ioctl(), uapi.IOCmd{Tag: tag, Addr: bufAddr(bufs[tag])}, uint64(tag))
}

func TestAddDevRules(t *testing.T) {
	r := newRaw(t, Config{})
	// Pitfall 6: header dev_id must equal info dev_id.
	info := uapi.DevInfo{NrHWQueues: 1, QueueDepth: 1, MaxIOBufBytes: maxIO, DevID: 3}
	info.Put(r.page)
	if res := r.cmd(uapi.CmdAddDev, dev(4), uapi.DevInfoSize); res != -int32(unix.EINVAL) {
		t.Errorf("mismatched ids: %d", res)
	}
	if res := r.cmd(uapi.CmdAddDev, uapi.CtrlCmd{DevID: 3, QueueID: 0}, uapi.DevInfoSize); res != -int32(unix.EINVAL) {
		t.Errorf("queue_id 0: %d", res)
	}
	if len(r.k.Violations()) != 2 {
		t.Errorf("violations %v", r.k.Violations())
	}
	if res := r.add(3); res != 0 {
		t.Fatalf("add: %d", res)
	}
	got, _ := uapi.DecodeDevInfo(r.page)
	if res := r.add(3); res != -int32(unix.EEXIST) {
		t.Errorf("second add: %d", res)
	}
	if got.Flags&uapi.FlagURingCmdCompInTask == 0 || got.Flags&uapi.FlagsRecoveryWithReissue != uapi.FlagsRecoveryWithReissue {
		t.Errorf("negotiated flags %v", got.Flags)
	}
	if res := r.add(uapi.DevIDAny); res != 0 {
		t.Fatal(res)
	}
	if got, _ := uapi.DecodeDevInfo(r.page); got.DevID != 0 {
		t.Errorf("picked id %d, want the lowest free (0)", got.DevID)
	}
}

// TestStartWaitsForFetch: START_DEV blocks until every tag is fetched, and
// SET_PARAMS is refused once started (-EACCES).
func TestStartWaitsForFetch(t *testing.T) {
	r := newRaw(t, Config{NoPartitionScan: true})
	r.add(1)
	if res := r.cmd(uapi.CmdStartDev, uapi.CtrlCmd{DevID: 1, QueueID: uapi.QueueIDNone, Data: pid}, 0); res != -int32(unix.EINVAL) {
		t.Errorf("START without params: %d", res)
	}
	r.setParams(1)
	c, q, bufs := r.queue(1)
	started := make(chan int32)
	go func() {
		res, _ := r.ctl.Cmd(ctx(t), uapi.CmdStartDev.Ioctl(), uapi.CtrlCmd{DevID: 1, QueueID: uapi.QueueIDNone, Data: pid}, nil)
		started <- res
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fetch(q, bufs, 0)
	if err := q.Submit(false); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-started:
		t.Fatalf("START returned %d with one of two tags fetched", res)
	default:
	}
	fetch(q, bufs, 1)
	if err := q.Submit(false); err != nil {
		t.Fatal(err)
	}
	if res := <-started; res != 0 {
		t.Fatalf("START: %d", res)
	}
	if res := r.setParams(1); res != -int32(unix.EACCES) {
		t.Errorf("SET_PARAMS after START: %d", res)
	}
	// A request reaches tag 0; COMMIT for tag 1 (not owned) is refused.
	br := NewBlockRequest(uapi.OpRead, 0, make([]byte, 512))
	if err := r.k.Submit(1, br); err != nil {
		t.Fatal(err)
	}
	if err := q.Submit(true); err != nil {
		t.Fatal(err)
	}
	ud, res, ok := q.Peek()
	if !ok || res != 0 {
		t.Fatalf("fetch cqe %d %d %v", ud, res, ok)
	}
	owned := uint16(ud)
	other := 1 - owned
	q.PrepIO(uapi.IOCommitAndFetchReq.Ioctl(), uapi.IOCmd{Tag: other, Addr: bufAddr(bufs[other])}, 9)
	if err := q.Submit(true); err != nil {
		t.Fatal(err)
	}
	if _, res, _ := q.Peek(); res != -int32(unix.EINVAL) {
		t.Errorf("commit of a tag not owned: %d", res)
	}
	if v := r.k.Violations(); len(v) != 1 || !strings.Contains(v[0], "does not own") {
		t.Errorf("violations %v", v)
	}
	copy(bufs[owned], "hello")
	q.PrepIO(uapi.IOCommitAndFetchReq.Ioctl(), uapi.IOCmd{Tag: owned, Result: 512, Addr: bufAddr(bufs[owned])}, uint64(owned))
	if err := q.Submit(false); err != nil {
		t.Fatal(err)
	}
	if res, _ := br.Wait(ctx(t)); res != 512 || string(br.Data[:5]) != "hello" {
		t.Fatalf("read res %d data %q", res, br.Data[:5])
	}
	// STOP aborts both armed tags with -ENODEV.
	if res := r.cmd(uapi.CmdStopDev, dev(1), 0); res != 0 {
		t.Fatal(res)
	}
	for range 2 {
		if _, res, ok := q.Peek(); !ok || res != uapi.IOResAbort {
			t.Fatalf("after STOP: %d %v", res, ok)
		}
	}
	// DEL_DEV with the ring and char device open would hang the kernel.
	if res := r.cmd(uapi.CmdDelDev, dev(1), 0); res != -int32(unix.EBUSY) {
		t.Errorf("DEL with open files: %d", res)
	}
	_ = q.Close()
	_ = c.Close()
	if res := r.cmd(uapi.CmdDelDev, dev(1), 0); res != 0 {
		t.Errorf("DEL: %d", res)
	}
}

// TestWrongThread: commands for a queue from another thread than the one
// that fetched are refused (§1.6 rule 1).
func TestWrongThread(t *testing.T) {
	r := newRaw(t, Config{})
	r.add(1)
	r.setParams(1)
	c, q, bufs := r.queue(1)
	defer c.Close()
	defer q.Close()
	done := make(chan struct{})
	go func() {
		// Locked and never unlocked: the thread exits with the goroutine,
		// so the test goroutine cannot inherit its tid.
		runtime.LockOSThread()
		fetch(q, bufs, 0)
		_ = q.Submit(false)
		close(done)
	}()
	<-done
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fetch(q, bufs, 1)
	_ = q.Submit(false)
	if _, res, _ := q.Peek(); res != -int32(unix.EINVAL) {
		t.Errorf("FETCH from another thread: %d", res)
	}
	if v := r.k.Violations(); len(v) != 1 || !strings.Contains(v[0], "thread") {
		t.Errorf("violations %v", v)
	}
}

func TestKilledProcess(t *testing.T) {
	r := newRaw(t, Config{})
	r.add(1)
	r.k.Kill(pid)
	if _, err := r.ctl.Cmd(ctx(t), uapi.CmdGetDevInfo.Ioctl(), dev(1), nil); !errors.Is(err, ErrKilled) {
		t.Errorf("control of a killed process: %v", err)
	}
	if _, err := r.p.OpenControl(); !errors.Is(err, ErrKilled) {
		t.Errorf("open control: %v", err)
	}
	if r.p.PIDAlive(pid) {
		t.Error("killed pid alive")
	}
}

func TestGetFeatures(t *testing.T) {
	r := newRaw(t, Config{})
	if res := r.cmd(uapi.CmdGetFeatures, uapi.CtrlCmd{}, 8); res != 0 || uapi.Flag(le(r.page)) != Lab612Features {
		t.Errorf("GET_FEATURES %d %#x", res, le(r.page))
	}
	r61 := newRaw(t, Config{Kernel61: true})
	if res := r61.cmd(uapi.CmdGetFeatures, uapi.CtrlCmd{}, 8); res != -int32(unix.ENODEV) {
		t.Errorf("6.1 GET_FEATURES %d", res)
	}
}

func le(b []byte) uint64 {
	var v uint64
	for i := range 8 {
		v |= uint64(b[i]) << (8 * i)
	}
	return v
}
