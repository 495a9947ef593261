package sim

import (
	"fmt"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// Simulated virtual addresses: regions are laid out from simVABase, page
// aligned, with an unmapped guard page between them so that an
// out-of-range remote address never lands in a neighbour.
const (
	simVABase = 0x7f00_0000_0000
	pageSize  = 4096
	// keyIndexShift leaves the low byte of a key to a random variant, as
	// mlx5 does, so a stale key of a re-used index is refused.
	keyIndexShift = 8
	// rkeyBit tells rkeys from lkeys, so a swapped key is refused.
	rkeyBit = 1 << 31
)

// region is one memory registration of a protection domain (device handle).
type region struct {
	mem    []byte
	addr   uint64
	lkey   uint32
	rkey   uint32
	access verbs.Access
	closed bool
}

// slice returns the part [addr, addr+n) of the region if it lies inside.
func (r *region) slice(addr uint64, n uint32) ([]byte, bool) {
	if addr < r.addr {
		return nil, false
	}
	off := addr - r.addr
	if off > uint64(len(r.mem)) || uint64(n) > uint64(len(r.mem))-off {
		return nil, false
	}
	return r.mem[off : off+uint64(n)], true
}

// Buffer is registered memory of a simulated device. It implements
// verbs.Buffer.
type Buffer struct {
	d *Device
	r *region
}

var _ verbs.Buffer = (*Buffer)(nil)

// Bytes is the registered memory; for Register it is the caller's slice, so
// remote writes land in the caller's memory.
func (b *Buffer) Bytes() []byte { return b.r.mem }

// Addr is the simulated virtual address of Bytes()[0].
func (b *Buffer) Addr() uint64 { return b.r.addr }

// LKey is the local key.
func (b *Buffer) LKey() uint32 { return b.r.lkey }

// RKey is the remote key.
func (b *Buffer) RKey() uint32 { return b.r.rkey }

// Close deregisters the memory; later accesses by its keys fail. Idempotent.
func (b *Buffer) Close() error {
	b.d.f.mu.Lock()
	defer b.d.f.mu.Unlock()
	if b.r.closed {
		return nil
	}
	b.r.closed = true
	delete(b.d.byLKey, b.r.lkey)
	delete(b.d.byRKey, b.r.rkey)
	for i, r := range b.d.regions {
		if r == b.r {
			b.d.regions = append(b.d.regions[:i], b.d.regions[i+1:]...)
			break
		}
	}
	return nil
}

// AllocBuffer allocates size bytes (on the Go heap: the simulator has no
// DMA) and registers them.
func (d *Device) AllocBuffer(size int, access verbs.Access) (verbs.Buffer, error) {
	if size <= 0 {
		return nil, &verbs.OpError{Op: "alloc buffer", Device: d.hca.name, Err: fmt.Errorf("size %d: %w", size, ErrBadConfig)}
	}
	mem := make([]byte, (size+pageSize-1)/pageSize*pageSize)
	return d.register("alloc buffer", mem[:size:size], access)
}

// Register registers caller memory. The buffer aliases mem.
func (d *Device) Register(mem []byte, access verbs.Access) (verbs.Buffer, error) {
	return d.register("register memory", mem, access)
}

func (d *Device) register(op string, mem []byte, access verbs.Access) (*Buffer, error) {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	if d.closed {
		return nil, &verbs.OpError{Op: op, Device: d.hca.name, Err: verbs.ErrClosed}
	}
	if len(mem) == 0 || uint64(len(mem)) > d.hca.info.MaxMRSize {
		return nil, &verbs.OpError{Op: op, Device: d.hca.name, Err: fmt.Errorf("length %d: %w", len(mem), ErrBadConfig)}
	}
	// IBTA: remote write access requires local write access.
	if access&verbs.AccessRemoteWrite != 0 && access&verbs.AccessLocalWrite == 0 {
		return nil, &verbs.OpError{Op: op, Device: d.hca.name, Err: verbs.ErrInvalidAccess}
	}
	h := d.hca
	h.nextKey++
	variant := uint32(d.f.rng.Uint32N(1 << keyIndexShift))
	lkey := (h.nextKey << keyIndexShift) | variant
	r := &region{mem: mem, addr: h.nextVA, lkey: lkey, rkey: lkey | rkeyBit, access: access}
	pages := (uint64(len(mem)) + pageSize - 1) / pageSize
	h.nextVA += (pages + 1) * pageSize // one guard page
	d.byLKey[r.lkey] = r
	d.byRKey[r.rkey] = r
	d.regions = append(d.regions, r)
	return &Buffer{d: d, r: r}, nil
}

// sgl is a resolved scatter/gather list: slices of registered memory. It
// lives on the stack of the data path.
type sgl struct {
	seg [verbs.MaxSGE][]byte
	n   int
}

func (s *sgl) size() int {
	t := 0
	for i := range s.n {
		t += len(s.seg[i])
	}
	return t
}

// resolveLocal resolves SGEs by lkey; every region must grant need.
func (d *Device) resolveLocal(sges []verbs.SGE, need verbs.Access, out *sgl) bool {
	out.n = 0
	for _, s := range sges {
		r := d.byLKey[s.LKey]
		if r == nil || r.access&need != need {
			return false
		}
		b, ok := r.slice(s.Addr, s.Length)
		if !ok {
			return false
		}
		out.seg[out.n] = b
		out.n++
	}
	return true
}

// resolveRemote resolves an (addr, rkey, length) triple of a remote request.
func (d *Device) resolveRemote(addr uint64, rkey uint32, n uint32, need verbs.Access) ([]byte, bool) {
	r := d.byRKey[rkey]
	if r == nil || r.access&need != need {
		return nil, false
	}
	return r.slice(addr, n)
}

// copySGL copies src into dst segment by segment and returns the bytes
// copied (min of both sizes).
func copySGL(dst, src *sgl) int {
	total := 0
	di, doff := 0, 0
	for si := range src.n {
		s := src.seg[si]
		for len(s) > 0 && di < dst.n {
			n := copy(dst.seg[di][doff:], s)
			s = s[n:]
			doff += n
			total += n
			if doff == len(dst.seg[di]) {
				di++
				doff = 0
			}
		}
	}
	return total
}
