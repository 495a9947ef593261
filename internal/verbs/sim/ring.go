package sim

// ring is a fixed-capacity FIFO over a preallocated slice: the per-QP work
// and completion queues, so the data path never allocates.
type ring[T any] struct {
	buf  []T
	head int
	n    int
}

func newRing[T any](capacity int) ring[T] { return ring[T]{buf: make([]T, capacity)} }

func (r *ring[T]) len() int { return r.n }

// push reserves the slot behind the last element and returns it; the caller
// checks full first.
func (r *ring[T]) push() *T {
	i := r.head + r.n
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	r.n++
	return &r.buf[i]
}

// at returns the i-th element counted from the head.
func (r *ring[T]) at(i int) *T {
	i += r.head
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	return &r.buf[i]
}

// pop drops the head element, zeroing it so it retains nothing.
func (r *ring[T]) pop() {
	var zero T
	r.buf[r.head] = zero
	r.head++
	if r.head == len(r.buf) {
		r.head = 0
	}
	r.n--
}
