package paths

import (
	"context"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
)

// reconnects is the reconnect scheduler: attempts the fsm asks for start
// after a random jitter, at most Policy.MaxReconnects at once and at most
// Policy.MaxReconnectsPerTarget per target, in the order they were asked
// for, so a fabric event that fails hundreds of paths does not become a
// login storm.
type reconnects struct {
	queue     []reconnectReq
	running   int
	perTarget map[string]int
	timer     clock.Timer
	started   uint64
}

type reconnectReq struct {
	slot   int
	inc    uint64
	target string
	due    time.Time
}

// enqueueReconnectLocked queues the attempt the fsm asked for.
func (d *Device) enqueueReconnectLocked(p *path, now time.Time) {
	due := now
	if j := d.policy.ReconnectJitter; j > 0 {
		due = now.Add(time.Duration(d.rng.Int64N(int64(j))))
	}
	d.recon.queue = append(d.recon.queue, reconnectReq{slot: p.slot, inc: p.inc, target: p.spec.Target, due: due})
	d.runReconnectsLocked(now)
}

// runReconnectsLocked starts every due attempt the limits allow and arms a
// timer for the next due one.
func (d *Device) runReconnectsLocked(now time.Time) {
	r := &d.recon
	next := never
	kept := r.queue[:0]
	for _, req := range r.queue {
		p := d.paths[req.slot]
		if p == nil || p.inc != req.inc {
			continue // the path is gone; the fsm ignores results for it
		}
		if req.due.After(now) {
			next = minTime(next, req.due)
			kept = append(kept, req)
			continue
		}
		if r.running >= d.policy.MaxReconnects || r.perTarget[req.target] >= d.policy.MaxReconnectsPerTarget {
			kept = append(kept, req) // a finishing attempt re-runs the queue
			continue
		}
		r.running++
		r.perTarget[req.target]++
		r.started++
		d.startReconnectLocked(p, req)
	}
	clear(r.queue[len(kept):])
	r.queue = kept
	stopTimer(r.timer)
	r.timer = nil
	if next != never && !d.closed {
		r.timer = d.clk.AfterFunc(next.Sub(now), func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			if !d.closed {
				d.runReconnectsLocked(d.clk.Now())
			}
		})
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// startReconnectLocked runs one attempt in its own goroutine: connect every
// queue's channel, then report the result to the fsm.
func (d *Device) startReconnectLocked(p *path, req reconnectReq) {
	spec := p.spec
	d.log.Info("path reconnecting", "path", spec.ID, "target", spec.Target)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-d.quit:
				cancel()
			case <-ctx.Done():
			}
		}()
		chans, err := d.connectAll(ctx, spec)
		d.reconnectDone(req, chans, err)
	}()
}

// reconnectDone installs the new channels and tells the fsm.
func (d *Device) reconnectDone(req reconnectReq, chans []Channel, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := &d.recon
	r.running--
	if r.perTarget[req.target]--; r.perTarget[req.target] <= 0 {
		delete(r.perTarget, req.target)
	}
	now := d.clk.Now()
	p := d.paths[req.slot]
	if d.closed || p == nil || p.inc != req.inc {
		closeAll(chans)
		return
	}
	if err != nil {
		p.reconnectErrs++
		p.lastErr = err.Error()
		d.log.Info("path reconnect failed", "path", p.spec.ID, "err", err)
		d.stepLocked(p, fsm.ReconnectFailed(now, err.Error()))
	} else {
		p.reconnects++
		d.attachLocked(p, chans)
		d.stepLocked(p, fsm.ReconnectSucceeded(now))
		// An admin fail meanwhile makes the fsm answer Block (which
		// detached the channels); a result it ignored leaves the path out
		// of service with channels nobody uses: drop them too.
		if st := p.fsm.State(); p.connected && st != fsm.Running && st != fsm.HeldDown {
			d.detachLocked(p)
		}
	}
	d.runReconnectsLocked(now)
}
