package ublk_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/ublkfake"
)

// faultyBackend fails every request touching its bad range with ENOSPC.
type faultyBackend struct {
	*ublk.Memory
	badOff, badEnd int64
}

func (f *faultyBackend) bad(off, n int64) bool { return off < f.badEnd && off+n > f.badOff }

func (f *faultyBackend) ReadAt(ctx context.Context, p []byte, off int64) error {
	if f.bad(off, int64(len(p))) {
		return unix.ENOSPC
	}
	return f.Memory.ReadAt(ctx, p, off)
}

func (f *faultyBackend) WriteAt(ctx context.Context, p []byte, off int64, fua bool) error {
	if f.bad(off, int64(len(p))) {
		return unix.ENOSPC
	}
	return f.Memory.WriteAt(ctx, p, off, fua)
}

// TestStressKillRecover runs clients over disjoint regions while the server
// is killed and recovered several times (REISSUE), with a failing range on
// the backend. Every request completes; reads return the last write; the
// failing range answers -ENOSPC; the driver sees no rule break.
func TestStressKillRecover(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { stress(t, seed) })
	}
}

func stress(t *testing.T, seed uint64) {
	const (
		clients   = 3
		region    = 256 << 10
		block     = 4096
		opsPer    = 60
		restarts  = 3
		workers   = 2
		queues    = 2
		tagsDepth = 4
	)
	k := ublkfake.New(ublkfake.Config{})
	mem := ublk.NewMemory(testSize, 512)
	fb := &faultyBackend{Memory: mem, badOff: clients * region, badEnd: clients*region + block}
	spec := ublk.DeviceSpec{ID: testID, Queues: queues, Depth: tagsDepth, MaxIO: 16 << 10, Size: testSize,
		Recovery: true, Discard: true, Logger: logger(t)}
	newHandler := func() ublk.Handler { return ublk.NewBackendHandler(fb, workers) }
	spec.Handler = newHandler()
	pid := int32(10)
	ctl, err := ublk.NewControl(k.Process(pid), nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ublk.Create(testCtx(t), ctl, spec)
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, clients+1)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(c)))
			base := int64(c) * region
			model := make([]byte, region)
			buf := make([]byte, 16<<10)
			for i := range opsPer {
				n := block * (1 + rng.IntN(4))
				off := base + int64(rng.IntN((region-n)/block))*block
				var r *ublkfake.BlockRequest
				switch op := rng.IntN(10); {
				case op < 4:
					data := buf[:n]
					for j := range data {
						data[j] = byte(rng.Uint32())
					}
					r = ublkfake.NewBlockRequest(uapi.OpWrite, off, data)
				case op < 8:
					r = ublkfake.NewBlockRequest(uapi.OpRead, off, make([]byte, n))
				case op < 9:
					r = ublkfake.NewBlockRequest(uapi.OpWriteZeroes, off, nil)
					r.Len = n
				default:
					r = ublkfake.NewBlockRequest(uapi.OpFlush, 0, nil)
				}
				r.Queue = rng.IntN(queues)
				res, err := k.Do(testCtx(t), testID, r)
				if err != nil {
					errs <- fmt.Errorf("client %d op %d: %w", c, i, err)
					return
				}
				want := int32(0)
				if r.Op == uapi.OpRead || r.Op == uapi.OpWrite {
					want = int32(n)
				}
				if res != want {
					errs <- fmt.Errorf("client %d op %d %v: res %d, want %d", c, i, r.Op, res, want)
					return
				}
				rel := off - base
				switch r.Op {
				case uapi.OpWrite:
					copy(model[rel:], r.Data)
				case uapi.OpWriteZeroes:
					clear(model[rel : rel+int64(n)])
				case uapi.OpRead:
					if !bytes.Equal(r.Data, model[rel:rel+int64(n)]) {
						errs <- fmt.Errorf("client %d op %d: read at %d differs from the last write", c, i, off)
						return
					}
				}
			}
			// The failing range reports the backend's errno.
			r := ublkfake.NewBlockRequest(uapi.OpRead, fb.badOff, make([]byte, block))
			if res, err := k.Do(testCtx(t), testID, r); err != nil || res != -int32(unix.ENOSPC) {
				errs <- fmt.Errorf("client %d: bad range res %d err %v", c, res, err)
			}
		}()
	}

	// Kill and recover while the clients run.
	rng := rand.New(rand.NewPCG(seed, 99))
	for range restarts {
		for range rng.IntN(50) {
			if err := k.Submit(testID, ublkfake.NewBlockRequest(uapi.OpFlush, 0, nil)); err != nil {
				t.Fatal(err)
			}
		}
		k.Kill(pid)
		<-d.Done()
		_ = ctl.Close()
		pid++
		if ctl, err = ublk.NewControl(k.Process(pid), nil); err != nil {
			t.Fatal(err)
		}
		spec.Handler = newHandler()
		if d, err = ublk.Open(testCtx(t), ctl, spec); err != nil {
			t.Fatal(err)
		}
		if !d.Recovered() {
			t.Fatal("not recovered")
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := d.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	_ = ctl.Close()
	noViolations(t, k)
}
