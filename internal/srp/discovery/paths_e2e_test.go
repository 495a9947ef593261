package discovery

import (
	"context"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
	"github.com/srp-mpathd/srp-mpathd/internal/paths"
	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/srptest"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

// Done-when: trap 65 for a target GID moves its paths to blocked within
// 10 ms of simulated time while I/O continues on the other path, with no
// I/O error (the blocked path's in-flight reads are reissued). The whole
// stack runs for real in a synctest bubble: the simulated subnet with its
// SMs and DM agents, an srptest target on both of its ports, the
// discovery engine, and a paths.Device with one queue thread reading
// through both paths. The glue between engine and device is what the
// daemon does: log in to TargetFound, ReportFailure(fsm.Trap65) on
// GIDOutOfService.
func TestTrap65BlocksPathsWhileIOContinues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			lun       = 0
			blockSize = 512
			blocks    = 1024
			ioSize    = 4096
			depth     = 8
		)
		h := newHarnessClock(t, clock.Real{}, testTarget{name: "tgt", pkeys: [2][]uint16{{0xffff}, {0xffff}}})
		for _, l := range h.links {
			l.SetLatency(5 * time.Microsecond) // I/O takes simulated time
		}
		tdev, err := h.f.OpenDevice("tgt")
		must(t, err)
		tgt := srptest.New(srptest.Config{ServiceGUID: h.guids["tgt"]})
		_, err = tgt.AddLU(srptest.LUConfig{LUN: lun, BlockSize: blockSize, Blocks: blocks, Serial: "E2E0001"})
		must(t, err)
		for side := range 2 {
			_, err := tgt.AddPort(tdev, netip.AddrPortFrom(ipoib(side, h.byName["tgt"].lid), srpPort))
			must(t, err)
		}
		ini, err := h.f.OpenDevice("ini")
		must(t, err)

		rd := newReader(depth, ioSize, blocks*blockSize/ioSize)
		dev, err := paths.New(paths.Config{Name: "lu0", BlockSize: blockSize, Blocks: blocks, Policy: paths.DefaultPolicy(),
			Queues: []paths.QueueConfig{{Depth: depth, Mem: rd.mem, TagSize: ioSize, Complete: rd.completed, Waker: rd.waker}},
			Clock:  clock.Real{}, Seed: 1})
		must(t, err)
		rd.q = dev.Queue(0)

		eng, err := New(Config{Fabric: h.f, Options: Options{Ports: iniPorts}, Clock: clock.Real{}})
		must(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { _ = eng.Run(ctx) })

		// The daemon's glue.
		added := make(chan string, 4)
		blocked := make(chan time.Time, 4)
		wg.Go(func() {
			byGID := map[string][]string{}
			for ev := range eng.Events() {
				switch ev.Kind {
				case TargetFound:
					tg := ev.Target
					id := tg.Local.String()
					side := int(tg.Local.Port) - 1
					err := dev.AddPath(ctx, paths.PathSpec{ID: id, Target: tg.String(), Device: ini, DeviceName: "ini",
						Port: tg.Local.Port, LUN: lun,
						Connect: func(ctx context.Context, _ int) (paths.Channel, error) {
							return srp.Dial(ctx, ini, srp.ChannelParams{Src: ipoib(side, iniLID),
								Dst: netip.AddrPortFrom(ipoib(side, tg.DLID), srpPort), InitiatorExt: 1,
								TargetPortID: srp.TargetPortID{IDExt: tg.IDExt, IOCGUID: tg.IOCGUID},
								TargetMaxIU:  tg.MaxIUSize, QueueDepth: depth})
						}})
					if err != nil {
						t.Errorf("AddPath %s: %v", id, err)
						continue
					}
					byGID[tg.DGID.String()] = append(byGID[tg.DGID.String()], id)
					added <- id
				case GIDOutOfService:
					for _, id := range byGID[ev.GID.String()] {
						if err := dev.ReportFailure(id, fsm.Trap65, "trap 65: "+ev.GID.String()); err != nil {
							t.Errorf("ReportFailure %s: %v", id, err)
						}
					}
					blocked <- time.Now()
				}
			}
		})
		<-added
		<-added

		stopIO := rd.start()
		pathStatus := func(id string) paths.PathStatus {
			for _, p := range dev.Snapshot().Paths {
				if p.ID == id {
					return p
				}
			}
			t.Fatalf("no path %s", id)
			return paths.PathStatus{}
		}
		for pathStatus("ini:1").Completions == 0 || pathStatus("ini:2").Completions == 0 {
			time.Sleep(time.Millisecond)
		}

		gone := time.Now()
		// The target's port 1 cable is pulled: its RC traffic is lost (the
		// QPs would notice only after their retry budget, seconds) and the
		// SM sends trap 65 for its GID.
		must(t, h.f.SetPortUp(sim.PortRef{Device: "tgt", Port: 1}, false))
		<-blocked
		p1 := pathStatus("ini:1")
		if p1.State != fsm.Blocked {
			t.Fatalf("path ini:1 is %v after trap 65, want blocked", p1.State)
		}
		if d := p1.Since.Sub(gone); d > 10*time.Millisecond {
			t.Fatalf("path ini:1 blocked %v after its GID left, want ≤ 10 ms", d)
		}
		before1, before2 := p1.Completions, pathStatus("ini:2").Completions
		doneBefore := rd.done.Load()
		time.Sleep(50 * time.Millisecond)
		after1, after2 := pathStatus("ini:1").Completions, pathStatus("ini:2").Completions
		if after2-before2 < 100 || after1 != before1 {
			t.Fatalf("completions in 50 ms after the trap: ini:1 %d, ini:2 %d; want none on ini:1, ≥100 on ini:2",
				after1-before1, after2-before2)
		}
		if rd.errs.Load() != 0 || rd.done.Load()-doneBefore < 100 {
			t.Fatalf("I/O errors %d, completions %d", rd.errs.Load(), rd.done.Load()-doneBefore)
		}

		stopIO()
		cancel()
		must(t, dev.Close())
		wg.Wait()
		must(t, tgt.Close())
		must(t, ini.Close())
		must(t, tdev.Close())
	})
}

// reader plays a ublk queue thread issuing reads at full depth.
type reader struct {
	q      *paths.Queue
	mem    []byte
	waker  *e2eWaker
	free   []uint16
	next   int
	nblk   int
	size   int
	done   atomic.Int64
	errs   atomic.Int64
	active bool
}

type e2eWaker struct{ c chan struct{} }

func (w *e2eWaker) Wake() {
	select {
	case w.c <- struct{}{}:
	default:
	}
}

func newReader(depth, size, nblk int) *reader {
	r := &reader{mem: make([]byte, depth*size), waker: &e2eWaker{c: make(chan struct{}, 1)}, nblk: nblk, size: size}
	for i := range depth {
		r.free = append(r.free, uint16(i))
	}
	return r
}

func (r *reader) completed(tag uint16, _ int, err error) {
	r.free = append(r.free, tag)
	r.done.Add(1)
	if err != nil {
		r.errs.Add(1)
	}
}

// start runs the queue thread; the returned function stops new I/O and
// waits until every I/O finished.
func (r *reader) start() func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	r.active = true
	go func() {
		defer close(done)
		r.run(stop)
	}()
	return func() {
		close(stop)
		<-done
	}
}

func (r *reader) run(stop <-chan struct{}) {
	var chans []paths.Channel
	var cases []reflect.SelectCase
	for {
		select {
		case <-stop:
			r.active = false
		default:
		}
		for r.active && len(r.free) > 0 {
			tag := r.free[len(r.free)-1]
			r.free = r.free[:len(r.free)-1]
			r.q.Start(paths.IO{Op: paths.OpRead, Off: int64(r.next%r.nblk) * int64(r.size), Len: r.size, Tag: tag})
			r.next++
		}
		if r.q.Poll() > 0 {
			continue
		}
		if !r.active && r.q.Busy() == 0 {
			return
		}
		r.q.ArmNotify()
		if r.q.Poll() > 0 {
			continue
		}
		chans = r.q.Channels(chans[:0])
		cases = cases[:0]
		for _, ch := range chans {
			if c := ch.Ready(); c != nil {
				cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
			}
		}
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(r.waker.c)})
		if r.active {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(stop)})
		}
		if at, ok := r.q.NextDeadline(); ok {
			tm := time.NewTimer(time.Until(at))
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(tm.C)})
			reflect.Select(cases)
			tm.Stop()
			continue
		}
		reflect.Select(cases)
	}
}
