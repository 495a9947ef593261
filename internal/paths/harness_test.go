package paths_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/paths"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/srptest"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

// The rig: one initiator device and one target device with one port per
// path, each pair joined by its own link (independent paths, as the lab's
// veth pairs), an srptest target serving one LU on every target port, and a
// paths.Device over the real srp.Channel.
const (
	rigLUN       = 1
	rigBlockSize = 512
	rigIOSize    = 4096
	rigBlocks    = 8192 // 4 MiB: 1024 I/O-sized blocks
	rigTgtPort   = 5555
	rigChanDepth = 32
)

type rig struct {
	t     testing.TB
	fab   *sim.Fabric
	ini   *sim.Device
	tdev  *sim.Device
	tgt   *srptest.Target
	lu    *srptest.LU
	links []*sim.Link
	ports []*srptest.Port
	dev   *paths.Device
	q     *queueThread   // queue 0
	qs    []*queueThread // every queue
	stop  context.CancelFunc
	dialT time.Duration
}

type rigOpts struct {
	paths   int
	depth   int
	latency time.Duration
	policy  paths.Policy
	seed    uint64
	logger  *slog.Logger
	queues  int // ublk queues (default 1)
	// dialTimeout bounds each login (0: the CM timeout).
	dialTimeout time.Duration
}

func iniAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, byte(i + 1), 1}) }
func tgtAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, byte(i + 1), 2}) }

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newRig builds the fabric, the target and the device with one queue.
// Call it inside a synctest bubble; close it with r.close.
func newRig(t testing.TB, o rigOpts) *rig {
	t.Helper()
	fab := sim.New(sim.Config{Seed: int64(o.seed)})
	var ip, tp []sim.PortConfig
	for i := range o.paths {
		ip = append(ip, sim.PortConfig{Addrs: []netip.Addr{iniAddr(i)}})
		tp = append(tp, sim.PortConfig{Addrs: []netip.Addr{tgtAddr(i)}})
	}
	must(t, fab.AddDevice("ini0", ip...))
	must(t, fab.AddDevice("tgt0", tp...))
	r := &rig{t: t, fab: fab, dialT: o.dialTimeout}
	for i := range o.paths {
		l, err := fab.Connect(sim.PortRef{Device: "ini0", Port: uint8(i + 1)}, sim.PortRef{Device: "tgt0", Port: uint8(i + 1)})
		must(t, err)
		l.SetLatency(o.latency)
		r.links = append(r.links, l)
	}
	var err error
	r.ini, err = fab.OpenDevice("ini0")
	must(t, err)
	r.tdev, err = fab.OpenDevice("tgt0")
	must(t, err)
	r.tgt = srptest.New(srptest.Config{})
	for i := range o.paths {
		p, err := r.tgt.AddPort(r.tdev, netip.AddrPortFrom(tgtAddr(i), rigTgtPort))
		must(t, err)
		r.ports = append(r.ports, p)
	}
	r.lu, err = r.tgt.AddLU(srptest.LUConfig{LUN: rigLUN, BlockSize: rigBlockSize, Blocks: rigBlocks, Serial: "PATHS0001", WriteCache: true, ThinProvisioning: true})
	must(t, err)

	nq := max(o.queues, 1)
	var qcs []paths.QueueConfig
	for k := range nq {
		qt := newQueueThread(o.depth, o.seed+uint64(k))
		qt.blockStride, qt.blockOffset = nq, k
		r.qs = append(r.qs, qt)
		qcs = append(qcs, paths.QueueConfig{Depth: o.depth, Mem: qt.mem, TagSize: rigIOSize, Complete: qt.completed, Waker: qt.waker})
	}
	r.q = r.qs[0]
	logger := o.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r.dev, err = paths.New(paths.Config{
		Name: "lu0", BlockSize: rigBlockSize, Blocks: rigBlocks, Policy: o.policy,
		Queues: qcs,
		Clock:  clock.Real{}, Logger: logger, Seed: o.seed,
	})
	must(t, err)
	for k, qt := range r.qs {
		qt.q = r.dev.Queue(k)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go r.dev.WatchEvents(ctx, r.ini)
	for i := range o.paths {
		must(t, r.dev.AddPath(context.Background(), r.pathSpec(i)))
	}
	return r
}

func (r *rig) pathSpec(i int) paths.PathSpec {
	return paths.PathSpec{
		ID: fmt.Sprintf("path%d", i), Target: fmt.Sprintf("tgt-port%d", i), Device: r.ini, DeviceName: "ini0", Port: uint8(i + 1),
		LUN: rigLUN,
		Connect: func(ctx context.Context, queue int) (paths.Channel, error) {
			return dialWithTimeout(ctx, r, i, queue, r.dialT)
		},
	}
}

func (r *rig) close() {
	r.stop()
	must(r.t, r.dev.Close())
	must(r.t, r.tgt.Close())
	must(r.t, r.fab.Close())
}

// pathState returns the state of path i.
func (r *rig) pathState(i int) paths.PathStatus {
	id := fmt.Sprintf("path%d", i)
	for _, p := range r.dev.Snapshot().Paths {
		if p.ID == id {
			return p
		}
	}
	r.t.Fatalf("no path %s", id)
	return paths.PathStatus{}
}

// chanWaker is a Waker backed by a channel with a buffer of one.
type chanWaker struct{ c chan struct{} }

func (w *chanWaker) Wake() {
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// ioRecord is one finished I/O.
type ioRecord struct {
	write      bool
	block      int
	start, end time.Time
	err        error
}

// queueThread plays ublk's queue thread: it submits a verified random 4 KiB
// read/write workload, polls, and sleeps on the channels' readiness, the
// waker and the queue's next deadline.
type queueThread struct {
	q      *paths.Queue
	depth  int
	mem    []byte
	waker  *chanWaker
	rng    *rand.Rand
	free   []uint16
	busy   map[int]bool // blocks with an I/O in flight
	inTag  []tagIO
	acked  map[int]uint64 // block -> seed of the last acknowledged write
	unsure map[int]bool   // blocks whose content is unknown (a write failed)
	seq    uint64
	// On each completion.
	onDone func(rec ioRecord)
	errors []string
	done   int
	// paused stops new submissions (the loop keeps polling).
	paused  atomic.Bool
	running bool
	scratch []byte
	// blockStride and blockOffset select the queue's blocks.
	blockStride, blockOffset int
}

type tagIO struct {
	write bool
	block int
	seed  uint64
	start time.Time
}

func newQueueThread(depth int, seed uint64) *queueThread {
	qt := &queueThread{
		depth: depth, mem: make([]byte, depth*rigIOSize), waker: &chanWaker{c: make(chan struct{}, 1)},
		rng:  rand.New(rand.NewPCG(seed, 0x71)),
		busy: make(map[int]bool), inTag: make([]tagIO, depth), acked: make(map[int]uint64), unsure: make(map[int]bool),
		scratch: make([]byte, rigIOSize),
	}
	for i := depth - 1; i >= 0; i-- {
		qt.free = append(qt.free, uint16(i))
	}
	return qt
}

func fill(b []byte, block int, seed uint64) {
	if seed == 0 {
		clear(b)
		return
	}
	x := seed*0x9e3779b97f4a7c15 ^ uint64(block)<<20 | 1
	for i := 0; i+8 <= len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i], b[i+1], b[i+2], b[i+3], b[i+4], b[i+5], b[i+6], b[i+7] =
			byte(x), byte(x>>8), byte(x>>16), byte(x>>24), byte(x>>32), byte(x>>40), byte(x>>48), byte(x>>56)
	}
}

func (qt *queueThread) buf(tag uint16) []byte {
	return qt.mem[int(tag)*rigIOSize : int(tag+1)*rigIOSize]
}

// submit starts new I/O until the depth is reached.
func (qt *queueThread) submit() {
	const blocks = rigBlocks * rigBlockSize / rigIOSize
	per := blocks / max(qt.blockStride, 1)
	for qt.running && !qt.paused.Load() && len(qt.free) > 0 {
		// Each queue owns the blocks b ≡ offset (mod stride): no two
		// queues race on one block, so each verifies its own.
		b := qt.rng.IntN(per)*max(qt.blockStride, 1) + qt.blockOffset
		if qt.busy[b] {
			continue
		}
		tag := qt.free[len(qt.free)-1]
		qt.free = qt.free[:len(qt.free)-1]
		write := qt.rng.IntN(2) == 0
		ti := tagIO{write: write, block: b, start: time.Now()}
		if write {
			qt.seq++
			ti.seed = qt.seq
			fill(qt.buf(tag), b, ti.seed)
		} else {
			clear(qt.buf(tag))
		}
		qt.busy[b] = true
		qt.inTag[tag] = ti
		op := paths.OpRead
		if write {
			op = paths.OpWrite
		}
		qt.q.Start(paths.IO{Op: op, Off: int64(b) * rigIOSize, Len: rigIOSize, Tag: tag})
	}
}

// completed is the queue's CompletionFunc.
func (qt *queueThread) completed(tag uint16, n int, err error) {
	ti := qt.inTag[tag]
	delete(qt.busy, ti.block)
	qt.free = append(qt.free, tag)
	qt.done++
	rec := ioRecord{write: ti.write, block: ti.block, start: ti.start, end: time.Now(), err: err}
	switch {
	case err != nil:
		qt.errors = append(qt.errors, fmt.Sprintf("block %d write=%v: %v", ti.block, ti.write, err))
		if ti.write {
			qt.unsure[ti.block] = true
		}
	case n != rigIOSize:
		qt.errors = append(qt.errors, fmt.Sprintf("block %d: %d bytes", ti.block, n))
	case ti.write:
		qt.acked[ti.block] = ti.seed
		delete(qt.unsure, ti.block)
	case !qt.unsure[ti.block]:
		fill(qt.scratch, ti.block, qt.acked[ti.block])
		if !bytes.Equal(qt.scratch, qt.buf(tag)) {
			qt.errors = append(qt.errors, fmt.Sprintf("block %d: read returned data other than the last acknowledged write (seed %d)", ti.block, qt.acked[ti.block]))
		}
	}
	if qt.onDone != nil {
		qt.onDone(rec)
	}
}

// run drives the queue until stop is closed and, then, until every I/O is
// done.
func (qt *queueThread) run(stop <-chan struct{}) {
	var chans []paths.Channel
	var cases []reflect.SelectCase
	stopping := false
	for {
		if !stopping {
			select {
			case <-stop:
				stopping = true
				qt.running = false
			default:
			}
		}
		qt.submit()
		if qt.q.Poll() > 0 {
			continue
		}
		if stopping && qt.q.Busy() == 0 {
			return
		}
		qt.q.ArmNotify()
		if qt.q.Poll() > 0 {
			continue
		}
		chans = qt.q.Channels(chans[:0])
		cases = cases[:0]
		for _, ch := range chans {
			if r := ch.Ready(); r != nil {
				cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(r)})
			}
		}
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(qt.waker.c)})
		if !stopping {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(stop)})
		}
		if at, ok := qt.q.NextDeadline(); ok {
			tm := time.NewTimer(time.Until(at))
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(tm.C)})
			reflect.Select(cases)
			tm.Stop()
			continue
		}
		reflect.Select(cases)
	}
}

// start runs the queue thread in its own goroutine; the returned function
// (idempotent, so a test may also defer it) stops it and waits until every
// I/O finished.
func (qt *queueThread) start() (stopAndWait func()) {
	stop := make(chan struct{})
	done := make(chan struct{})
	qt.running = true
	go func() {
		defer close(done)
		qt.run(stop)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			<-done
		})
	}
}

func debugLogger() *slog.Logger {
	if os.Getenv("PATHS_DEBUG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
