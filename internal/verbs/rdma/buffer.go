//go:build linux && cgo

package rdma

/*
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// Buffer is memory registered with a device's protection domain (an
// ibv_mr). It implements verbs.Buffer.
type Buffer struct {
	d       *Device
	mem     []byte
	mapping []byte // what AllocBuffer mapped (unix.Munmap wants that slice); nil for Register
	lkey    uint32
	rkey    uint32

	mu sync.Mutex
	mr *C.struct_ibv_mr // nil once closed
}

var _ verbs.Buffer = (*Buffer)(nil)

// accessFlags maps the seam's access rights to ibv_access_flags.
func accessFlags(a verbs.Access) C.int {
	var f C.int
	if a&verbs.AccessLocalWrite != 0 {
		f |= C.IBV_ACCESS_LOCAL_WRITE
	}
	if a&verbs.AccessRemoteWrite != 0 {
		f |= C.IBV_ACCESS_REMOTE_WRITE
	}
	if a&verbs.AccessRemoteRead != 0 {
		f |= C.IBV_ACCESS_REMOTE_READ
	}
	return f
}

// AllocBuffer maps size bytes (rounded up to whole pages) of anonymous
// memory outside the Go heap and registers them. Bytes has length size.
func (d *Device) AllocBuffer(size int, access verbs.Access) (verbs.Buffer, error) {
	const op = "alloc buffer"
	if size <= 0 {
		return nil, d.opErr(op, fmt.Errorf("size %d: %w", size, ErrBadParams))
	}
	page := os.Getpagesize()
	n := (size + page - 1) / page * page
	mem, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, d.opErr(op, fmt.Errorf("mmap %d bytes: %w", n, err))
	}
	b, err := d.register(op, mem, access)
	if err != nil {
		return nil, errors.Join(err, unix.Munmap(mem))
	}
	b.mapping = mem
	b.mem = mem[:size:size]
	return b, nil
}

// Register registers caller memory. mem must not be Go heap memory (the
// collector could free it while the device still DMAs into it; cgo cannot
// check that): use unix.Mmap, or memory some other owner maps (ublk's
// per-tag buffers). It must stay mapped until the Buffer is closed.
func (d *Device) Register(mem []byte, access verbs.Access) (verbs.Buffer, error) {
	return d.register("register memory", mem, access)
}

func (d *Device) register(op string, mem []byte, access verbs.Access) (*Buffer, error) {
	if len(mem) == 0 {
		return nil, d.opErr(op, fmt.Errorf("empty memory: %w", ErrBadParams))
	}
	// IBTA: remote write access requires local write access.
	if access&verbs.AccessRemoteWrite != 0 && access&verbs.AccessLocalWrite == 0 {
		return nil, d.opErr(op, verbs.ErrInvalidAccess)
	}
	if d.isClosed() {
		return nil, d.opErr(op, verbs.ErrClosed)
	}
	// The address goes to C as an integer: it is not a Go heap pointer and
	// C keeps it (inside the MR) beyond the call.
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	mr, err := C.shim_reg_mr(d.pd, C.uintptr_t(addr), C.size_t(len(mem)), accessFlags(access))
	if mr == nil {
		return nil, d.opErr(op, fmt.Errorf("ibv_reg_mr of %d bytes: %w", len(mem), errnoOr(err, syscall.EINVAL)))
	}
	return &Buffer{d: d, mem: mem, mr: mr, lkey: uint32(C.shim_mr_lkey(mr)), rkey: uint32(C.shim_mr_rkey(mr))}, nil
}

// Bytes is the registered memory.
func (b *Buffer) Bytes() []byte { return b.mem }

// Addr is the registered virtual address of Bytes()[0] (ibv_reg_mr
// registers the process address, so remote peers use it as is).
func (b *Buffer) Addr() uint64 { return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b.mem)))) }

// LKey is the local key of the memory region.
func (b *Buffer) LKey() uint32 { return b.lkey }

// RKey is the remote key of the memory region.
func (b *Buffer) RKey() uint32 { return b.rkey }

// Close deregisters the memory and unmaps it when AllocBuffer mapped it.
// It is idempotent.
func (b *Buffer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mr == nil {
		return nil
	}
	var errs []error
	if rc := C.ibv_dereg_mr(b.mr); rc != 0 {
		// The region is still registered: keep the mapping, the device
		// may still write into it.
		return b.d.opErr("deregister memory", syscall.Errno(rc))
	}
	b.mr = nil
	if b.mapping != nil {
		if err := unix.Munmap(b.mapping); err != nil {
			errs = append(errs, b.d.opErr("munmap", err))
		}
		b.mapping = nil
	}
	b.mem = nil
	return errors.Join(errs...)
}
