package paths

import (
	"strconv"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
)

// heartbeat is one path's heartbeat state. The heartbeat is a zero-length
// RDMA WRITE on the path's first channel: it needs no SRP credit and no
// target CPU, only the peer's RC ACK, so it tells a silent fabric (a
// blackhole: no port event, no error until the RC retry budget of seconds
// is spent) from a busy target.
type heartbeat struct {
	ch       Channel
	pending  bool
	seq      uint64
	postedAt time.Time
	deadline time.Time
	// lastAck is when the last heartbeat was seen ACKed (at a tick, so up
	// to one interval late).
	lastAck time.Time
	// rtt is an upper bound of the last round trip: the ACK was seen at
	// the first tick after it.
	rtt    time.Duration
	misses uint64
	sent   uint64
}

// armHeartbeatLocked (re)starts the ticker that sends heartbeats and wakes
// queues whose timed work fell due (it runs at DefaultHeartbeatInterval
// when heartbeats are off).
func (d *Device) armHeartbeatLocked() {
	stopTimer(d.hbTimer)
	d.hbTimer = nil
	iv := d.policy.HeartbeatInterval
	if iv <= 0 {
		iv = DefaultHeartbeatInterval
	}
	if !d.closed {
		d.hbTimer = d.clk.AfterFunc(iv, d.heartbeatTick)
	}
}

// wakeDueQueues wakes the queues whose published deadline has passed.
func (d *Device) wakeDueQueues(now time.Time) {
	for i, q := range d.queues {
		if at := q.wakeAt.Load(); at != 0 && at <= now.UnixNano() && d.qcfg[i].Waker != nil {
			d.qcfg[i].Waker.Wake()
		}
	}
}

// heartbeatTick checks the outstanding heartbeat of every connected path
// and posts the next one. A heartbeat not ACKed by its deadline blocks the
// path (fsm.HeartbeatMiss).
func (d *Device) heartbeatTick() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	now := d.clk.Now()
	d.wakeDueQueues(now)
	defer d.armHeartbeatLocked()
	if d.policy.HeartbeatInterval <= 0 {
		return
	}
	// The ACK is seen by the thread polling the channel: use a queue that
	// is served (bound), and none before the first is.
	hq := -1
	for i, qc := range d.qcfg {
		if qc.Mem != nil {
			hq = i
			break
		}
	}
	if hq < 0 {
		return
	}
	timeout := d.policy.HeartbeatTimeout
	for _, p := range d.paths {
		if p == nil || !p.connected || len(p.chans) <= hq {
			continue
		}
		if st := p.fsm.State(); st != fsm.Running && st != fsm.HeldDown {
			continue
		}
		ch := p.chans[hq]
		hb := &p.hb
		if hb.pending && hb.ch != ch {
			hb.pending = false // the queue choice changed; start over
		}
		if hb.pending {
			if ch.HeartbeatAcked() >= hb.seq {
				hb.pending = false
				hb.lastAck = now
				hb.rtt = now.Sub(hb.postedAt)
			} else if !now.Before(hb.deadline) {
				hb.pending = false
				hb.misses++
				p.detection = now.Sub(hb.postedAt)
				if !hb.lastAck.IsZero() {
					p.detection = now.Sub(hb.lastAck)
				}
				p.lastErr = "heartbeat " + strconv.FormatUint(hb.seq, 10) + " not acknowledged within " + timeout.String()
				d.stepLocked(p, fsm.Fail(now, fsm.HeartbeatMiss, p.lastErr))
				continue
			} else if w := d.qcfg[hq].Waker; w != nil {
				// Make an idle queue thread poll (and see the ACK) before
				// the deadline, even if no fd of this channel wakes it.
				w.Wake()
			}
		}
		if !hb.pending {
			seq, err := ch.Heartbeat()
			if err != nil {
				// The channel failed (its watcher reports it) or both
				// heartbeat slots are busy; try at the next tick.
				continue
			}
			hb.pending, hb.seq, hb.postedAt, hb.deadline, hb.ch = true, seq, now, now.Add(timeout), ch
			hb.sent++
		}
	}
}
