package daemon

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/paths"
)

// workloadIOSize is the size of every workload I/O.
const workloadIOSize = 4096

// maxWorkloadErrors bounds the error messages a workload keeps.
const maxWorkloadErrors = 16

// workload is a verified random 4 KiB read/write load on one device (the
// demo's stand-in for md): every read must return the last acknowledged
// write of its block. It runs on its queue runner's goroutine; the
// measurement (stall windows, counters) is read by others under mu.
type workload struct {
	blocks  int // I/O-sized blocks on the device
	depth   int // I/O in flight at most
	rng     *rand.Rand
	busy    map[int]bool
	inTag   []wlTag
	acked   map[int]uint64 // block → seed of its last acknowledged write
	unsure  map[int]bool   // a write failed: content unknown
	seq     uint64
	scratch []byte

	done, failed atomic.Uint64

	mu       sync.Mutex
	last     time.Time // last completion
	measure  bool
	prev     time.Time
	maxGap   time.Duration
	winIOs   int
	winErrs  int
	errors   []string
	errCount int
}

type wlTag struct {
	write bool
	block int
	seed  uint64
}

func newWorkload(capacity int64, depth int, seed uint64) *workload {
	return &workload{
		blocks: int(capacity / workloadIOSize), depth: depth, rng: rand.New(rand.NewPCG(seed, 0x776c)),
		busy: map[int]bool{}, inTag: make([]wlTag, runnerDepth), acked: map[int]uint64{}, unsure: map[int]bool{},
		scratch: make([]byte, workloadIOSize),
	}
}

// fillPattern writes the pattern of (block, seed) into b; seed 0 is the
// zeroes of a block never written.
func fillPattern(b []byte, block int, seed uint64) {
	if seed == 0 {
		clear(b)
		return
	}
	x := seed*0x9e3779b97f4a7c15 ^ uint64(block)<<20 | 1
	for i := 0; i+8 <= len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		for k := range 8 {
			b[i+k] = byte(x >> (8 * k))
		}
	}
}

// next returns the next I/O for tag, its data prepared in buf.
func (w *workload) next(tag uint16, buf []byte) (paths.IO, bool) {
	if len(w.busy) >= min(w.depth, w.blocks) {
		return paths.IO{}, false
	}
	b := w.rng.IntN(w.blocks)
	for w.busy[b] {
		b = (b + 1) % w.blocks
	}
	t := wlTag{write: w.rng.IntN(2) == 0, block: b}
	op := paths.OpRead
	if t.write {
		w.seq++
		t.seed = w.seq
		fillPattern(buf[:workloadIOSize], b, t.seed)
		op = paths.OpWrite
	} else {
		clear(buf[:workloadIOSize])
	}
	w.busy[b] = true
	w.inTag[tag] = t
	return paths.IO{Op: op, Off: int64(b) * workloadIOSize, Len: workloadIOSize, Tag: tag}, true
}

// completed checks one I/O's outcome.
func (w *workload) completed(tag uint16, buf []byte, n int, err error, now time.Time) {
	t := w.inTag[tag]
	delete(w.busy, t.block)
	var bad string
	switch {
	case err != nil:
		bad = fmt.Sprintf("block %d write=%v: %v", t.block, t.write, err)
		if t.write {
			w.unsure[t.block] = true
		}
	case n != workloadIOSize:
		bad = fmt.Sprintf("block %d: %d bytes transferred, want %d", t.block, n, workloadIOSize)
	case t.write:
		w.acked[t.block] = t.seed
		delete(w.unsure, t.block)
	case !w.unsure[t.block]:
		fillPattern(w.scratch, t.block, w.acked[t.block])
		if !bytes.Equal(w.scratch, buf[:workloadIOSize]) {
			bad = fmt.Sprintf("block %d: read returned other data than the last acknowledged write", t.block)
		}
	}
	w.done.Add(1)
	if bad != "" {
		w.failed.Add(1)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if bad != "" {
		w.errCount++
		if len(w.errors) < maxWorkloadErrors {
			w.errors = append(w.errors, bad)
		}
	}
	if w.measure {
		w.maxGap = max(w.maxGap, now.Sub(w.prev))
		w.prev = now
		w.winIOs++
		if bad != "" {
			w.winErrs++
		}
	}
	w.last = now
}

// startWindow starts measuring at a fault injected at 'at': the first gap
// runs from the last completion before it.
func (w *workload) startWindow(at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.measure, w.maxGap, w.winIOs, w.winErrs = true, 0, 0, 0
	w.prev = w.last
	if w.prev.IsZero() || w.prev.After(at) {
		w.prev = at
	}
}

// windowResult is one measurement window.
type windowResult struct {
	Stall  time.Duration
	IOs    int
	Errors int
}

// endWindow stops measuring at 'at'; a window still waiting for its next
// completion counts the wait up to 'at' as stall.
func (w *workload) endWindow(at time.Time) windowResult {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.measure = false
	stall := max(w.maxGap, at.Sub(w.prev))
	return windowResult{Stall: stall, IOs: w.winIOs, Errors: w.winErrs}
}

// errorList returns the first error messages and the total.
func (w *workload) errorList() ([]string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.errors...), w.errCount
}
