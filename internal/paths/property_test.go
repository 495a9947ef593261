package paths_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
	"github.com/srp-mpathd/srp-mpathd/internal/paths"
	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/srptest"
)

var (
	propSeed  = flag.Uint64("paths.seed", 0, "run TestSimProperty with this seed only (reproduce a failure)")
	propSeeds = flag.Int("paths.seeds", 3, "number of seeds TestSimProperty runs")
)

// Settings of the property test: short timers so that a few simulated
// seconds see failures, reconnects, hold-downs and no-path queueing.
const (
	propDuration     = 5 * time.Second
	propNoPathRetry  = 10 * time.Second
	propIOTimeout    = 2 * time.Second
	propAbortTimeout = time.Second
	propDialTimeout  = 2 * time.Second
	// propRecovery: how long a path is counted unavailable after its fault
	// ends (reconnect_delay, jitter, a dial timeout, a hold-down).
	propRecovery = 8 * time.Second
	propMaxFault = 1500 * time.Millisecond
)

func propPolicy() paths.Policy {
	p := paths.DefaultPolicy()
	p.NoPathRetry = paths.NoPathRetry(propNoPathRetry)
	p.IOTimeout = propIOTimeout
	p.AbortTimeout = propAbortTimeout
	p.Path.ReconnectDelay = fsm.Timeout(time.Second)
	p.Path.FastIOFailTmo = fsm.Timeout(5 * time.Second)
	p.Path.DevLossTmo = fsm.Off
	p.Path.FlapWindow = 20 * time.Second
	p.Path.HoldDown = 3 * time.Second
	return p
}

// propBound is the longest an I/O may take: queued without a path for
// no_path_retry, then an attempt that times out, its abort that goes
// unanswered, and heartbeat detection, plus a margin for the reissue.
const propBound = propNoPathRetry + propIOTimeout + propAbortTimeout + paths.DefaultHeartbeatInterval + paths.DefaultHeartbeatTimeout + 2*time.Second

// TestSimProperty runs random, seeded schedules of link down/up,
// blackholes, DREQs, CHECK CONDITIONs, hung commands (I/O timeout, ABORT
// TASK, reissue), slow paths and short total outages
// while a verified 4 KiB read/write workload runs at QD 32 on 2-4 paths.
// Invariants: no acknowledged write is lost or torn (every read returns the
// last acknowledged write); no I/O fails (the schedule keeps one path
// usable, and total outages are far shorter than no_path_retry); every I/O
// finishes within propBound. A failure names its seed; rerun it with
// "go test -run TestSimProperty ./internal/paths/ -args -paths.seed=N".
func TestSimProperty(t *testing.T) {
	seeds := []uint64{}
	if *propSeed != 0 {
		seeds = append(seeds, *propSeed)
	} else {
		for i := range *propSeeds {
			seeds = append(seeds, uint64(1000+i*7919))
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { runProperty(t, seed) })
		})
	}
}

// fault is one scheduled action.
type fault struct {
	at   time.Duration
	what string
	do   func(r *rig)
}

// schedule draws a fault schedule for n paths from rng. At most n-1 paths
// are out (fault plus recovery) at once, except for total outages, which
// are short and only start when every path is healthy.
func schedule(rng *rand.Rand, n int, base time.Duration) []fault {
	var fs []fault
	out := make([]time.Duration, n) // path i is unavailable until out[i]
	busyUntil := func(now time.Duration) int {
		k := 0
		for _, u := range out {
			if u > now {
				k++
			}
		}
		return k
	}
	for now := 200 * time.Millisecond; now < propDuration; now += time.Duration(100+rng.IntN(700)) * time.Millisecond {
		i := rng.IntN(n)
		dur := time.Duration(50+rng.IntN(int(propMaxFault/time.Millisecond)-50)) * time.Millisecond
		kind := rng.IntN(13)
		free := out[i] <= now && busyUntil(now) < n-1
		switch {
		case kind < 3 && free:
			fs = append(fs, fault{now, fmt.Sprintf("link%d down", i), func(r *rig) { r.links[i].Down() }},
				fault{now + dur, fmt.Sprintf("link%d up", i), func(r *rig) { r.links[i].Up() }})
			out[i] = now + dur + propRecovery
		case kind < 5 && free:
			fs = append(fs, fault{now, fmt.Sprintf("link%d blackhole", i), func(r *rig) { r.links[i].Blackhole(true) }},
				fault{now + dur, fmt.Sprintf("link%d blackhole off", i), func(r *rig) { r.links[i].Blackhole(false) }})
			out[i] = now + dur + propRecovery
		case kind < 7 && free:
			fs = append(fs, fault{now, fmt.Sprintf("port%d DREQ", i), func(r *rig) { r.ports[i].KillSessions() }})
			out[i] = now + propRecovery
		case kind < 9:
			ccs := []srptest.CheckCondition{srptest.UnitAttentionReset, srptest.NotReadyBecoming, {Key: 0xB}}
			cc := ccs[rng.IntN(len(ccs))]
			fs = append(fs, fault{now, fmt.Sprintf("check condition %+v", cc), func(r *rig) { r.lu.InjectCheckCondition(cc) }})
		case kind < 11:
			slow := base * time.Duration(2+rng.IntN(8))
			fs = append(fs, fault{now, fmt.Sprintf("link%d slow %v", i, slow), func(r *rig) { r.links[i].SetLatency(slow) }},
				fault{now + dur, fmt.Sprintf("link%d latency %v", i, base), func(r *rig) { r.links[i].SetLatency(base) }})
		case kind == 11:
			k := 1 + rng.IntN(3)
			fs = append(fs, fault{now, fmt.Sprintf("port%d hangs %d commands", i, k), func(r *rig) {
				r.ports[i].SetLUFaults(rigLUN, srptest.LUFaults{DropResponses: k})
			}})
		case busyUntil(now) == 0:
			short := dur / 3
			fs = append(fs, fault{now, "all links down", func(r *rig) {
				for _, l := range r.links {
					l.Down()
				}
			}}, fault{now + short, "all links up", func(r *rig) {
				for _, l := range r.links {
					l.Up()
				}
			}})
			for j := range out {
				out[j] = now + short + propRecovery
			}
		}
	}
	slices.SortStableFunc(fs, func(a, b fault) int { return int(a.at - b.at) })
	return fs
}

func runProperty(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x70726f70))
	n := 2 + rng.IntN(3)
	base := time.Duration(2000+rng.IntN(3000)) * time.Microsecond
	r := newRig(t, rigOpts{paths: n, depth: 32, latency: base, policy: propPolicy(), seed: seed, logger: debugLogger(), dialTimeout: propDialTimeout})
	defer r.close()
	fs := schedule(rng, n, base)

	var mu sync.Mutex
	var worst time.Duration
	var worstRec ioRecord
	r.q.onDone = func(rec ioRecord) {
		mu.Lock()
		defer mu.Unlock()
		if d := rec.end.Sub(rec.start); d > worst {
			worst, worstRec = d, rec
		}
	}
	stop := r.q.start()
	defer stop()
	start := time.Now()
	var log []string
	for _, f := range fs {
		time.Sleep(time.Until(start.Add(f.at)))
		log = append(log, fmt.Sprintf("%v %s", f.at, f.what))
		f.do(r)
	}
	time.Sleep(time.Until(start.Add(propDuration)))
	for _, l := range r.links {
		l.Up()
		l.Blackhole(false)
		l.SetLatency(base)
	}
	finished := make(chan struct{})
	go func() {
		stop()
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(propBound):
		t.Fatalf("seed %d: I/O still in progress %v after the workload stopped (%d busy)\nstatus: %+v\nschedule:\n%s",
			seed, propBound, r.q.q.Busy(), r.dev.Snapshot(), strings.Join(log, "\n"))
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("seed %d (%d paths, latency %v): %s\nreproduce: go test -run TestSimProperty ./internal/paths/ -args -paths.seed=%d\nschedule:\n%s",
			seed, n, base, fmt.Sprintf(format, args...), seed, strings.Join(log, "\n"))
	}
	if len(r.q.errors) > 0 {
		fail("%d I/O errors, first: %s", len(r.q.errors), strings.Join(r.q.errors[:min(5, len(r.q.errors))], "; "))
	}
	if worst > propBound {
		fail("an I/O took %v (block %d write=%v from %v), bound %v", worst, worstRec.block, worstRec.write, worstRec.start.Sub(start), propBound)
	}
	if r.q.done == 0 {
		fail("no I/O completed")
	}
	t.Logf("seed %d: %d paths, %d faults, %d I/O, slowest %v", seed, n, len(fs), r.q.done, worst)
	if testing.Verbose() {
		t.Logf("schedule:\n%s", strings.Join(log, "\n"))
		for _, tr := range r.dev.Transitions() {
			t.Logf("%v %s %v -> %v (%s) [%s]", tr.At.Sub(start), tr.Path, tr.From, tr.To, tr.Reason, tr.Actions)
		}
	}
}

// dialWithTimeout bounds a reconnect's login the way the daemon does, so a
// login into a blackhole does not hold the path for the CM timeout.
func dialWithTimeout(ctx context.Context, r *rig, i, queue int, d time.Duration) (paths.Channel, error) {
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	c, err := srp.Dial(ctx, r.ini, srp.ChannelParams{
		Src: iniAddr(i), Dst: netip.AddrPortFrom(tgtAddr(i), rigTgtPort),
		InitiatorExt: 0xfe80000000000000 + uint64(queue), TargetPortID: r.tgt.PortID(),
		QueueDepth: rigChanDepth, Immediate: true, MultiChannel: true, Port: uint8(i + 1),
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}
