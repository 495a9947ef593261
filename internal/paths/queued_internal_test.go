package paths

import "testing"

// TestQueuedCountsParkedOnce: an I/O parked because its path had no credit
// is retried on every Poll; each retry that parks it again must leave the
// Queued figure (the daemon's device view, the lab's queued_max) at one
// per waiting I/O, and it must drop to zero once the I/O went out.
func TestQueuedCountsParkedOnce(t *testing.T) {
	const polls = 5
	r := newFakeRig(t, DefaultPolicy())
	r.addPath("a", 0)
	c := r.ch("a")
	c.mu.Lock()
	c.noCredit = true
	c.mu.Unlock()
	r.read(1, 0)
	for range polls {
		r.q.Poll()
	}
	if q := r.dev.Snapshot().Queued; q != 1 {
		t.Fatalf("Queued is %d after %d polls with one I/O parked for lack of credit, want 1", q, polls)
	}
	c.mu.Lock()
	c.noCredit = false
	c.mu.Unlock()
	r.q.Poll() // submits the parked I/O
	r.q.Poll() // collects its answer
	if o, ok := r.done[1]; !ok || o.err != nil {
		t.Fatalf("the parked I/O: done %v, %+v", ok, o)
	}
	if q := r.dev.Snapshot().Queued; q != 0 {
		t.Fatalf("Queued is %d once the parked I/O completed, want 0", q)
	}
}
