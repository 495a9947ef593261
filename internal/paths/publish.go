package paths

import (
	"cmp"
	"slices"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
)

// eligible: the path runs and has its channels.
func (p *path) eligible() bool { return p.connected && p.fsm.State() == fsm.Running }

// held: the path has its channels but waits out a hold-down (hold_down or
// flap damping). A held path carries I/O only while no path is eligible:
// damping must not turn a returning path into an outage.
func (p *path) held() bool { return p.connected && p.fsm.State() == fsm.HeldDown }

// usableLocked: p may carry I/O under the current table (d.useHeld is
// decided by publishLocked).
func (d *Device) usableLocked(p *path) bool { return p.eligible() || (d.useHeld && p.held()) }

// groupOf returns the group a path belongs to under the grouping.
func groupOf(g Grouping, p *path) groupKey {
	switch g {
	case GroupMultibus:
		return groupKey{}
	case GroupByPrio:
		return groupKey{prio: p.spec.Priority}
	}
	return groupKey{prio: p.spec.Priority, order: p.order}
}

// better orders groups: higher priority first, then the earlier added.
func better(a, b groupKey) int {
	if c := cmp.Compare(b.prio, a.prio); c != 0 {
		return c
	}
	return cmp.Compare(a.order, b.order)
}

// chooseGroupLocked decides the active group: the current one while it has
// an eligible path and failback does not move I/O back to a better one;
// otherwise the best group with an eligible path (a failover).
func (d *Device) chooseGroupLocked(now time.Time) {
	g := d.policy.Grouping
	var keys []groupKey
	for _, p := range d.paths {
		if p != nil && d.usableLocked(p) {
			k := groupOf(g, p)
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	if len(keys) == 0 {
		return // keep the last active group: I/O returns to it first
	}
	slices.SortFunc(keys, better)
	best := keys[0]
	curOK := d.hasActive && slices.Contains(keys, d.active)
	switch {
	case !curOK:
		if d.hasActive && d.active != best {
			d.failovers++
			d.log.Info("failover", "from", d.active, "to", best)
		}
		d.active, d.hasActive = best, true
		d.failbackDue = time.Time{}
	case d.active == best:
		d.failbackDue = time.Time{}
	case d.policy.Failback == FailbackImmediate:
		d.failbackTo(best)
	case d.policy.Failback == FailbackManual:
	default:
		if d.failbackDue.IsZero() {
			d.failbackDue = now.Add(time.Duration(d.policy.Failback))
			stopTimer(d.fbTimer)
			d.fbTimer = d.clk.AfterFunc(time.Duration(d.policy.Failback), d.failbackTimer)
		} else if !now.Before(d.failbackDue) {
			d.failbackTo(best)
		}
	}
}

func (d *Device) failbackTo(best groupKey) {
	d.log.Info("failback", "from", d.active, "to", best)
	d.active = best
	d.failbackDue = time.Time{}
}

func (d *Device) failbackTimer() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.publishLocked(d.clk.Now())
	d.wakeQueues()
}

// publishLocked builds and publishes a new table from the path records.
func (d *Device) publishLocked(now time.Time) {
	d.useHeld = !slices.ContainsFunc(d.paths[:], func(p *path) bool { return p != nil && p.eligible() })
	d.chooseGroupLocked(now)
	d.version++
	t := &table{version: d.version, policy: d.policy}
	g := d.policy.Grouping
	for slot, p := range d.paths {
		if p == nil {
			continue
		}
		v := &t.paths[slot]
		*v = pathView{present: true, inc: p.inc, id: p.spec.ID, lun: p.spec.LUN, chans: p.chans, mrs: d.mrsLocked(p.spec.Device), ctr: p.ctr}
		if !d.usableLocked(p) {
			continue
		}
		v.usable = true
		if d.hasActive && groupOf(g, p) == d.active {
			t.active = append(t.active, uint8(slot))
		} else {
			t.others = append(t.others, uint8(slot))
		}
	}
	if t.anyUsable() {
		d.noPathSince = time.Time{}
	} else if d.noPathSince.IsZero() {
		d.noPathSince = now
		d.log.Warn("no usable path", "no_path_retry", d.policy.NoPathRetry)
		if npr := d.policy.NoPathRetry; npr > 0 {
			// Wake the queues when waiting I/O must fail.
			stopTimer(d.nprTimer)
			d.nprTimer = d.clk.AfterFunc(time.Duration(npr), d.failbackTimer)
		}
	}
	t.noPathSince = d.noPathSince
	t.noWait = d.lost || d.failWaiting
	d.tab.Store(t)
}
