package fsm

import "time"

// flapHistory remembers the times of the last len(times) failures that took
// the path out of service, in a ring allocated once, so recording a failure
// does not allocate.
type flapHistory struct {
	times []time.Time
	next  int // slot the next failure is written to
	n     int // valid entries, at most len(times)
}

func newFlapHistory(size int) flapHistory {
	return flapHistory{times: make([]time.Time, size)}
}

func (h *flapHistory) record(t time.Time) {
	if len(h.times) == 0 {
		return
	}
	h.times[h.next] = t
	h.next = (h.next + 1) % len(h.times)
	h.n = min(h.n+1, len(h.times))
}

// within counts the remembered failures younger than window at now. A failure
// exactly window old has left the window.
func (h *flapHistory) within(now time.Time, window time.Duration) int {
	count := 0
	for i := range h.n {
		if now.Sub(h.times[i]) < window {
			count++
		}
	}
	return count
}

func (h *flapHistory) reset() {
	h.next, h.n = 0, 0
}

// resize keeps the most recent failures that fit the new size.
func (h *flapHistory) resize(size int) {
	if size == len(h.times) {
		return
	}
	keep := min(h.n, size)
	times := make([]time.Time, size)
	for i := range keep {
		// Oldest kept first: the entry keep-i failures back from next.
		src := (h.next - keep + i + 2*len(h.times)) % len(h.times)
		times[i] = h.times[src]
	}
	h.times, h.n = times, keep
	h.next = 0
	if size > 0 {
		h.next = keep % size
	}
}
