package ublk

import (
	"context"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Memory is a RAM-backed Backend (tests, the lab).
type Memory struct {
	lbs  int
	mu   sync.RWMutex
	data []byte
}

// NewMemory returns a zeroed memory backend of size bytes with the given
// logical block size (512 or 4096).
func NewMemory(size int64, logicalBlockSize int) *Memory {
	return &Memory{lbs: logicalBlockSize, data: make([]byte, size)}
}

// Geometry reports the size and block size.
func (m *Memory) Geometry() Geometry {
	return Geometry{Size: int64(len(m.data)), LogicalBlockSize: m.lbs, PhysicalBlockSize: m.lbs}
}

func (m *Memory) check(off, n int64) error {
	if off < 0 || n < 0 || off+n > int64(len(m.data)) {
		return fmt.Errorf("%w: [%d,+%d) beyond %d bytes", unix.EINVAL, off, n, len(m.data))
	}
	return nil
}

// ReadAt copies from memory.
func (m *Memory) ReadAt(_ context.Context, p []byte, off int64) error {
	if err := m.check(off, int64(len(p))); err != nil {
		return err
	}
	m.mu.RLock()
	copy(p, m.data[off:])
	m.mu.RUnlock()
	return nil
}

// WriteAt copies into memory.
func (m *Memory) WriteAt(_ context.Context, p []byte, off int64, _ bool) error {
	if err := m.check(off, int64(len(p))); err != nil {
		return err
	}
	m.mu.Lock()
	copy(m.data[off:], p)
	m.mu.Unlock()
	return nil
}

// Flush does nothing: memory is always "stable".
func (m *Memory) Flush(context.Context) error { return nil }

// Discard zeroes the range.
func (m *Memory) Discard(ctx context.Context, off, n int64) error {
	return m.WriteZeroes(ctx, off, n, true)
}

// WriteZeroes zeroes the range.
func (m *Memory) WriteZeroes(_ context.Context, off, n int64, _ bool) error {
	if err := m.check(off, n); err != nil {
		return err
	}
	m.mu.Lock()
	clear(m.data[off : off+n])
	m.mu.Unlock()
	return nil
}

// Null is a Backend that reads zeroes and drops writes.
type Null struct {
	Size             int64
	LogicalBlockSize int
}

// Geometry reports the configured size.
func (n Null) Geometry() Geometry {
	return Geometry{Size: n.Size, LogicalBlockSize: n.LogicalBlockSize, PhysicalBlockSize: n.LogicalBlockSize}
}

// ReadAt zeroes p.
func (Null) ReadAt(_ context.Context, p []byte, _ int64) error { clear(p); return nil }

// WriteAt drops p.
func (Null) WriteAt(context.Context, []byte, int64, bool) error { return nil }

// Flush does nothing.
func (Null) Flush(context.Context) error { return nil }

// File is a Backend on a regular file (or a block device).
type File struct {
	f   *os.File
	lbs int
	sz  int64
}

// OpenFile opens path as a backend. When size > 0 a regular file is
// created or extended to size bytes; otherwise its current size is used.
func OpenFile(path string, size int64, logicalBlockSize int) (*File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if size > 0 {
		if err := f.Truncate(size); err != nil {
			_ = f.Close()
			return nil, err
		}
	} else {
		st, err := f.Stat()
		if err != nil {
			_ = f.Close()
			return nil, err
		}
		size = st.Size()
	}
	return &File{f: f, lbs: logicalBlockSize, sz: size}, nil
}

// Geometry reports the file's size; writes are cached, so FLUSH matters.
func (b *File) Geometry() Geometry {
	return Geometry{Size: b.sz, LogicalBlockSize: b.lbs, PhysicalBlockSize: b.lbs, VolatileCache: true}
}

// ReadAt reads from the file; past its end reads zeroes.
func (b *File) ReadAt(_ context.Context, p []byte, off int64) error {
	n, err := b.f.ReadAt(p, off)
	if n < len(p) && err != nil {
		return err
	}
	return nil
}

// WriteAt writes to the file, and syncs it for FUA.
func (b *File) WriteAt(_ context.Context, p []byte, off int64, fua bool) error {
	if _, err := b.f.WriteAt(p, off); err != nil {
		return err
	}
	if fua {
		return unix.Fdatasync(int(b.f.Fd()))
	}
	return nil
}

// Flush syncs the file.
func (b *File) Flush(context.Context) error { return unix.Fdatasync(int(b.f.Fd())) }

// Discard punches a hole.
func (b *File) Discard(_ context.Context, off, n int64) error {
	return unix.Fallocate(int(b.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

// WriteZeroes zeroes the range (punching a hole unless unmap is false).
func (b *File) WriteZeroes(_ context.Context, off, n int64, unmap bool) error {
	mode := uint32(unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE)
	if unmap {
		mode = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE
	}
	return unix.Fallocate(int(b.f.Fd()), mode, off, n)
}

// Close closes the file.
func (b *File) Close() error { return b.f.Close() }
