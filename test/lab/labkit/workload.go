package labkit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The I/O load: Depth goroutines, each with one O_DIRECT I/O in flight on a
// block device, every successful completion timestamped under one mutex, so
// the longest gap between completions (the stall an application sees) and
// the longest single I/O are exact to the clock. The same load runs on the
// kernel's dm-multipath device and on srp-mpathd's /dev/ublkbN, so their
// figures compare.
//
// Verification: goroutine w owns the blocks b with b % Depth == w, so no two
// I/Os ever touch one block at a time. Each owned block has a generation: a
// write stores a pattern derived from (block, generation, seed); a read of a
// block written before checks it. A failed write leaves the block unknown
// (old or new data are both legal) until it is written again.

// Defaults of [IOLoad].
const (
	DefaultIOBlockSize = 4096
	DefaultIODepth     = 16
	// errorBackoff keeps a goroutine whose I/O fails at once (no path,
	// device gone) from spinning.
	errorBackoff = 10 * time.Millisecond
	genUnknown   = ^uint32(0)
	patternMul   = 0x9e3779b97f4a7c15 // odd 64-bit constant: spreads word indexes
	wordBytes    = 8
)

// IOLoad describes a load.
type IOLoad struct {
	Path         string // block device
	BlockSize    int    // bytes per I/O, a multiple of the device's logical block size
	Depth        int    // I/Os in flight (goroutines)
	WritePercent int    // 0: reads only; 100: writes only
	// Span is how many bytes from offset 0 the load uses (default: all of
	// the device).
	Span   int64
	Verify bool // writes carry a pattern, reads of written blocks check it
	Seed   uint64
	// TimelineCap is how many I/Os the latency timeline keeps (see
	// IOStats.Timeline); 0 is DefaultTimelineCap, negative keeps none.
	TimelineCap int
}

// IOStats is what a load saw, from its start to the moment it was read.
type IOStats struct {
	Start, End     time.Time
	Reads, Writes  int64 // successful I/Os
	Errors         int64 // failed I/Os
	VerifyErrors   int64
	FirstError     string // first I/O or verify error, "" if none
	LastCompletion time.Time
	// MaxGap is the longest time without any successful completion: between
	// two completions, from Start to the first one, or from the last one to
	// End (then GapOpen is set: I/O had not resumed). GapFrom is when it
	// began.
	MaxGap  time.Duration
	GapFrom time.Time
	GapOpen bool
	// MaxLatency is the longest single I/O that ended (successfully or not);
	// OldestInFlight the age of the oldest I/O still in flight at End.
	MaxLatency     time.Duration
	MaxLatencyFrom time.Time
	OldestInFlight time.Duration
	// Timeline has every ended I/O (up to IOLoad.TimelineCap) and the
	// load's markers (IORun.Mark). Its samples are shared with the run,
	// which never rewrites them: read them, do not modify them.
	Timeline IOTimeline
}

// IOs is the number of successful I/Os.
func (s IOStats) IOs() int64 { return s.Reads + s.Writes }

// IOPS is the rate of successful I/Os over the whole load.
func (s IOStats) IOPS() float64 {
	d := s.End.Sub(s.Start).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(s.IOs()) / d
}

// Stall is the longest of MaxGap, MaxLatency and OldestInFlight: the worst
// wait the application saw, for all its I/O or for one I/O, counting one
// still stuck at the end. With several I/Os in flight on a multibus device
// MaxGap stays short while single I/Os hang on the failed path, so compare
// both figures, not one.
func (s IOStats) Stall() time.Duration { return max(s.MaxGap, s.OldestInFlight, s.MaxLatency) }

// String summarizes the stats for a scenario's notes.
func (s IOStats) String() string {
	open := ""
	if s.GapOpen {
		open = " (still open)"
	}
	return fmt.Sprintf("%d reads %d writes in %v (%.0f IOPS), %d errors, %d verify errors; longest gap %v from %s%s; longest I/O %v from %s; oldest in flight %v%s",
		s.Reads, s.Writes, s.End.Sub(s.Start).Round(time.Millisecond), s.IOPS(), s.Errors, s.VerifyErrors,
		s.MaxGap.Round(time.Millisecond), s.GapFrom.Format("15:04:05.000"), open,
		s.MaxLatency.Round(time.Millisecond), s.MaxLatencyFrom.Format("15:04:05.000"),
		s.OldestInFlight.Round(time.Millisecond), firstErr(s.FirstError))
}

func firstErr(s string) string {
	if s == "" {
		return ""
	}
	return "; first error: " + s
}

// IORun is a running load.
type IORun struct {
	load IOLoad
	f    *os.File
	stop chan struct{}
	wg   sync.WaitGroup
	// stopOnce starts the end of the load once; done is closed when every
	// I/O goroutine left and the device is closed.
	stopOnce sync.Once
	done     chan struct{}
	// inflight[w] is the start of goroutine w's current I/O in UnixNano, 0
	// when idle.
	inflight []atomic.Int64

	mu       sync.Mutex
	stats    IOStats
	last     time.Time // last successful completion, or Start
	timeline timelineBuf
}

// StartIOLoad opens l.Path with O_DIRECT and starts the load.
func StartIOLoad(l IOLoad) (*IORun, error) {
	if l.BlockSize <= 0 {
		l.BlockSize = DefaultIOBlockSize
	}
	if l.Depth <= 0 {
		l.Depth = DefaultIODepth
	}
	if l.BlockSize%wordBytes != 0 || l.WritePercent < 0 || l.WritePercent > 100 {
		return nil, &OpError{Op: "io load", Path: l.Path, Err: fmt.Errorf("block size %d, write percent %d", l.BlockSize, l.WritePercent)}
	}
	flag := os.O_RDONLY
	if l.WritePercent > 0 {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(l.Path, flag|syscall.O_DIRECT, 0)
	if err != nil {
		return nil, &OpError{Op: "io load", Path: l.Path, Err: err}
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, &OpError{Op: "io load size", Path: l.Path, Err: err}
	}
	if l.Span <= 0 || l.Span > size {
		l.Span = size
	}
	blocks := l.Span / int64(l.BlockSize)
	if blocks < int64(l.Depth) {
		f.Close()
		return nil, &OpError{Op: "io load", Path: l.Path, Err: fmt.Errorf("span %d holds %d blocks, fewer than depth %d", l.Span, blocks, l.Depth)}
	}
	if l.TimelineCap == 0 {
		l.TimelineCap = DefaultTimelineCap
	}
	r := &IORun{load: l, f: f, stop: make(chan struct{}), done: make(chan struct{}), inflight: make([]atomic.Int64, l.Depth), timeline: newTimelineBuf(l.TimelineCap)}
	bufs := make([][]byte, l.Depth)
	for w := range bufs {
		// O_DIRECT wants an aligned buffer: an anonymous mapping is
		// page-aligned.
		b, err := syscall.Mmap(-1, 0, l.BlockSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
		if err != nil {
			for _, m := range bufs[:w] {
				syscall.Munmap(m)
			}
			f.Close()
			return nil, &OpError{Op: "io load mmap", Path: l.Path, Err: err}
		}
		bufs[w] = b
	}
	r.stats.Start = time.Now()
	r.last = r.stats.Start
	for w := range l.Depth {
		r.wg.Add(1)
		go r.worker(w, bufs[w], blocks)
	}
	return r, nil
}

func (r *IORun) worker(w int, buf []byte, blocks int64) {
	defer r.wg.Done()
	defer syscall.Munmap(buf)
	l := r.load
	depth := int64(l.Depth)
	owned := (blocks - int64(w) + depth - 1) / depth
	gens := make([]uint32, owned)
	rng := rand.New(rand.NewPCG(l.Seed, uint64(w)))
	for {
		select {
		case <-r.stop:
			return
		default:
		}
		k := rng.Int64N(owned)
		b := k*depth + int64(w)
		off := b * int64(l.BlockSize)
		write := l.WritePercent > 0 && rng.IntN(100) < l.WritePercent
		gen := gens[k]
		if write {
			gen++
			if gen == genUnknown {
				gen = 1
			}
			if l.Verify {
				fill(buf, b, gen, l.Seed)
			}
		}
		t0 := time.Now()
		r.inflight[w].Store(t0.UnixNano())
		var err error
		if write {
			_, err = r.f.WriteAt(buf, off)
		} else {
			_, err = r.f.ReadAt(buf, off)
		}
		r.inflight[w].Store(0)
		var verr error
		switch {
		case err != nil && write:
			gens[k] = genUnknown
		case err != nil:
		case write:
			gens[k] = gen
		case l.Verify && gen != 0 && gen != genUnknown:
			verr = check(buf, b, gen, l.Seed)
		}
		r.complete(t0, write, err, verr)
		if err != nil {
			select {
			case <-r.stop:
				return
			case <-time.After(errorBackoff):
			}
		}
	}
}

// complete accounts one ended I/O that started at t0.
func (r *IORun) complete(t0 time.Time, write bool, err, verr error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	s := &r.stats
	lat := now.Sub(t0)
	if lat > s.MaxLatency {
		s.MaxLatency, s.MaxLatencyFrom = lat, t0
	}
	var flags IOFlags
	if write {
		flags |= IOWrite
	}
	if err != nil {
		flags |= IOFailed
	}
	r.timeline.add(now.Sub(s.Start), lat, flags)
	if err != nil {
		s.Errors++
		if s.FirstError == "" {
			s.FirstError = fmt.Sprintf("%s at %s: %v", ioKind(write), now.Format("15:04:05.000"), err)
		}
		return
	}
	if verr != nil {
		s.VerifyErrors++
		if s.FirstError == "" {
			s.FirstError = verr.Error()
		}
	}
	if write {
		s.Writes++
	} else {
		s.Reads++
	}
	if gap := now.Sub(r.last); gap > s.MaxGap {
		s.MaxGap, s.GapFrom = gap, r.last
	}
	r.last = now
	s.LastCompletion = now
}

func ioKind(write bool) string {
	if write {
		return "write"
	}
	return "read"
}

// Stats returns the stats so far; End is now.
func (r *IORun) Stats() IOStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshot(time.Now())
}

func (r *IORun) snapshot(now time.Time) IOStats {
	s := r.stats
	s.End = now
	s.Timeline = r.timeline.snapshot(s.Start)
	if gap := now.Sub(r.last); gap > s.MaxGap {
		s.MaxGap, s.GapFrom, s.GapOpen = gap, r.last, true
	}
	for i := range r.inflight {
		if t := r.inflight[i].Load(); t != 0 {
			s.OldestInFlight = max(s.OldestInFlight, now.Sub(time.Unix(0, t)))
		}
	}
	return s
}

// OldestInFlight is the age of the oldest I/O in flight now.
func (r *IORun) OldestInFlight() time.Duration {
	now := time.Now()
	var oldest time.Duration
	for i := range r.inflight {
		if t := r.inflight[i].Load(); t != 0 {
			oldest = max(oldest, now.Sub(time.Unix(0, t)))
		}
	}
	return oldest
}

// WaitFlowing waits until I/O has flowed for settle without interruption,
// counting from notBefore at the earliest: all that time no I/O was in
// flight longer than stuck and some I/O completed within every stuck. It is
// how a scenario waits for the end of a failover stall. It returns the
// moment from which I/O flowed. An I/O caught by
// the fault only shows once it is older than stuck, and while the failed
// path is still in use new I/O keeps getting caught, so one look is not
// enough: settle must be well above stuck. The error is ctx's when it ends
// first.
func (r *IORun) WaitFlowing(ctx context.Context, notBefore time.Time, stuck, settle time.Duration) (time.Time, error) {
	tick := time.NewTicker(max(stuck/4, time.Millisecond))
	defer tick.Stop()
	var okSince time.Time
	for {
		now := time.Now()
		r.mu.Lock()
		recent := now.Sub(r.last) < stuck
		r.mu.Unlock()
		switch {
		case !recent || r.OldestInFlight() >= stuck:
			okSince = time.Time{}
		case okSince.IsZero():
			okSince = now
		}
		if !okSince.IsZero() && !now.Before(notBefore) && now.Sub(okSince) >= settle {
			return okSince, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-tick.C:
		}
	}
}

// Stop ends the load: no new I/O starts, the stats are taken (End is now:
// an I/O still stuck shows as OldestInFlight and an open gap), and the I/Os
// in flight are waited for until ctx ends. A pread stuck in the kernel
// cannot be interrupted: if ctx ends first, Stop returns the stats with
// ctx's error and the stuck goroutines finish (and close the device) when
// the kernel lets them. Stop may be called again (a deferred cleanup after
// the test's own Stop): the later call takes the stats anew and waits the same.
func (r *IORun) Stop(ctx context.Context) (IOStats, error) {
	r.mu.Lock()
	s := r.snapshot(time.Now())
	r.mu.Unlock()
	r.stopOnce.Do(func() {
		close(r.stop)
		go func() {
			r.wg.Wait()
			r.f.Close()
			close(r.done)
		}()
	})
	select {
	case <-r.done:
		return s, nil
	case <-ctx.Done():
		return s, &OpError{Op: "io load stop", Path: r.load.Path, Err: fmt.Errorf("I/O still in flight: %w", ctx.Err())}
	}
}

// fill writes the pattern of (block, gen, seed) into buf.
func fill(buf []byte, block int64, gen uint32, seed uint64) {
	base := uint64(block)<<32 | uint64(gen)
	for i := 0; i < len(buf); i += wordBytes {
		binary.LittleEndian.PutUint64(buf[i:], base^(uint64(i/wordBytes)*patternMul)^seed)
	}
}

// errVerify marks a block whose content is not the pattern last written.
var errVerify = errors.New("verify")

func check(buf []byte, block int64, gen uint32, seed uint64) error {
	base := uint64(block)<<32 | uint64(gen)
	for i := 0; i < len(buf); i += wordBytes {
		want := base ^ (uint64(i/wordBytes) * patternMul) ^ seed
		if got := binary.LittleEndian.Uint64(buf[i:]); got != want {
			return fmt.Errorf("%w: block %d generation %d: word %d is %#x, want %#x", errVerify, block, gen, i/wordBytes, got, want)
		}
	}
	return nil
}

// FioRandReadIOPS runs fio 4 KiB random O_DIRECT reads at queue depth depth
// (libaio) on dev for runtime after a 1 s ramp, and returns the read IOPS.
// It is the lab's one throughput figure, run alike on every stack.
func FioRandReadIOPS(ctx context.Context, dev string, depth int, runtime time.Duration) (FioResult, error) {
	return RunFio(ctx, "--name=randread", "--filename="+dev, "--rw=randread", "--bs=4k", "--direct=1",
		"--ioengine=libaio", "--iodepth="+strconv.Itoa(depth), "--time_based",
		"--runtime="+strconv.Itoa(int(runtime/time.Second)), "--ramp_time=1", "--numjobs=1")
}
