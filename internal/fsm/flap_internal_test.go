package fsm

import (
	"testing"
	"time"
)

func TestFlapHistoryRing(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	h := newFlapHistory(3)
	for _, s := range []int{1, 2, 3, 4, 5} { // wraps: keeps 3, 4, 5
		h.record(at(s))
	}
	if got := h.within(at(5), time.Hour); got != 3 {
		t.Fatalf("within = %d, want 3", got)
	}
	// Age 5-3 = 2s: a window of 2s excludes it (exactly window old).
	if got := h.within(at(5), 2*time.Second); got != 2 {
		t.Errorf("within(2s) = %d, want 2 (4 and 5)", got)
	}
	h.resize(2) // keeps the most recent: 4, 5
	if got := h.within(at(5), 1500*time.Millisecond); got != 2 {
		t.Errorf("after shrink within(1.5s) = %d, want 2", got)
	}
	if got := h.within(at(5), time.Hour); got != 2 {
		t.Errorf("after shrink within = %d, want 2", got)
	}
	h.record(at(6)) // 5, 6
	if got := h.within(at(6), 1500*time.Millisecond); got != 2 {
		t.Errorf("after record within(1.5s) = %d, want 2 (5 and 6)", got)
	}
	h.resize(4) // 5, 6 kept; room for two more
	h.record(at(7))
	h.record(at(8))
	if got := h.within(at(8), time.Hour); got != 4 {
		t.Errorf("after grow within = %d, want 4", got)
	}
	h.record(at(9)) // drops 5
	if got := h.within(at(9), 4500*time.Millisecond); got != 4 {
		t.Errorf("within(4.5s) = %d, want 4 (6..9)", got)
	}
	h.resize(0)
	h.record(at(10))
	if got := h.within(at(10), time.Hour); got != 0 {
		t.Errorf("size 0 remembers %d", got)
	}
	h.resize(2)
	h.record(at(11))
	if got := h.within(at(11), time.Hour); got != 1 {
		t.Errorf("regrown within = %d, want 1", got)
	}
	h.reset()
	if got := h.within(at(11), time.Hour); got != 0 {
		t.Errorf("after reset within = %d", got)
	}
}
