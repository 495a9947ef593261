package store

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// The bbolt on-disk header, checked by us before bbolt maps the file: bbolt
// trusts its meta page and touches pages past the end of a truncated file
// through its mmap (SIGBUS), and panics on some damaged pages. Layout from
// go.etcd.io/bbolt internal/common (page.go, meta.go), format version 2: a
// 16-byte page header, then the meta {magic u32, version u32, page_size u32,
// flags u32, root {pgid u64, sequence u64}, freelist u64, pgid u64, txid u64,
// checksum u64}, native byte order; checksum = FNV-64a over the meta bytes
// before it. Meta 0 is page 0, meta 1 is page 1.
const (
	boltPageHeaderSize = 16
	boltMagic          = 0xED0CDAED
	boltFormatVersion  = 2
	boltMetaSize       = 64
	boltMetaSumLen     = 56 // bytes covered by the checksum
	offMagic           = 0
	offVersion         = 4
	offPageSize        = 8
	offRoot            = 16 // root bucket's page id
	offFreelist        = 32 // freelist page id, or boltNoFreelist
	offHighWater       = 40 // pgid: first page id past the end of the data
	offTxid            = 48
	offChecksum        = 56
	// bbolt looks for the second meta page at 1 KiB << i, i = 0..14.
	boltMinPageSize = 1 << 10
	boltMaxPageSize = 1 << 24
	boltMinPages    = 4 // meta 0, meta 1, freelist, root leaf
	boltNoFreelist  = 0xffffffffffffffff
	// page header: id u64, flags u16, count u16, overflow u32
	offPageFlags     = 8
	pageFlagBranch   = 0x01
	pageFlagLeaf     = 0x02
	pageFlagFreelist = 0x10
)

// boltMeta is the part of a meta page we check.
type boltMeta struct {
	magic, version, pageSize uint32
	root, freelist           uint64
	highWater, txid          uint64
	sumOK                    bool
}

func parseBoltMeta(page []byte) (boltMeta, bool) {
	if len(page) < boltPageHeaderSize+boltMetaSize {
		return boltMeta{}, false
	}
	m := page[boltPageHeaderSize : boltPageHeaderSize+boltMetaSize]
	ne := binary.NativeEndian
	h := fnv.New64a()
	_, _ = h.Write(m[:boltMetaSumLen])
	return boltMeta{
		magic:     ne.Uint32(m[offMagic:]),
		version:   ne.Uint32(m[offVersion:]),
		pageSize:  ne.Uint32(m[offPageSize:]),
		root:      ne.Uint64(m[offRoot:]),
		freelist:  ne.Uint64(m[offFreelist:]),
		highWater: ne.Uint64(m[offHighWater:]),
		txid:      ne.Uint64(m[offTxid:]),
		sumOK:     h.Sum64() == ne.Uint64(m[offChecksum:]),
	}, true
}

func (m boltMeta) valid() bool {
	return m.magic == boltMagic && m.version == boltFormatVersion && m.sumOK &&
		m.pageSize >= boltMinPageSize && m.pageSize <= boltMaxPageSize && m.pageSize&(m.pageSize-1) == 0
}

// checkHeader validates the bbolt file f (locked by the caller): meta
// pages, size, and the pages bbolt will follow. The error wraps
// ErrTruncated, ErrNotDatabase or ErrCorrupt and says what is wrong; the
// caller adds the path.
func checkHeader(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if size == 0 {
		// We never leave an empty file behind (new stores are created
		// aside and linked into place), so an empty file lost its data.
		return fmt.Errorf("%w: the file is empty (0 bytes); restore it from a backup or remove it to start a new store (every LU then gets a new device id)", ErrTruncated)
	}
	first := make([]byte, boltPageHeaderSize+boltMetaSize)
	n, err := f.ReadAt(first, 0)
	if err != nil && err != io.EOF {
		return err
	}
	m0, ok := parseBoltMeta(first[:n])
	if !ok {
		if n >= boltPageHeaderSize+4 && binary.NativeEndian.Uint32(first[boltPageHeaderSize:]) == boltMagic {
			return fmt.Errorf("%w: %d bytes, shorter than one bbolt meta page", ErrTruncated, size)
		}
		return fmt.Errorf("%w: %d bytes, too short and no bbolt magic number", ErrNotDatabase, size)
	}

	// Find meta 1: at m0's page size if meta 0 is sound, else where bbolt
	// would search for it.
	var candidates []int64
	if m0.valid() {
		candidates = []int64{int64(m0.pageSize)}
	} else {
		for ps := int64(boltMinPageSize); ps <= boltMaxPageSize; ps <<= 1 {
			candidates = append(candidates, ps)
		}
	}
	var m1 boltMeta
	for _, off := range candidates {
		buf := make([]byte, boltPageHeaderSize+boltMetaSize)
		n, err := f.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			return err
		}
		if m, ok := parseBoltMeta(buf[:n]); ok && m.magic == boltMagic {
			m1 = m
			if m.valid() {
				break
			}
		}
	}

	var best boltMeta
	switch {
	case m0.valid() && m1.valid():
		best = m0
		if m1.txid > m0.txid {
			best = m1
		}
	case m0.valid():
		best = m0
	case m1.valid():
		best = m1
	case m0.magic != boltMagic && m1.magic != boltMagic:
		return fmt.Errorf("%w: no bbolt magic number in either meta page (%d bytes of something else)", ErrNotDatabase, size)
	case (m0.magic == boltMagic && m0.version != boltFormatVersion) || (m1.magic == boltMagic && m1.version != boltFormatVersion):
		v := m0.version
		if m0.magic != boltMagic {
			v = m1.version
		}
		return fmt.Errorf("%w: bbolt file format version %d, this build reads version %d", ErrCorrupt, v, boltFormatVersion)
	default:
		return fmt.Errorf("%w: both bbolt meta pages fail their checksum", ErrCorrupt)
	}

	need := int64(best.highWater) * int64(best.pageSize)
	if best.highWater < boltMinPages || need/int64(best.pageSize) != int64(best.highWater) {
		return fmt.Errorf("%w: meta page (txid %d) claims %d pages", ErrCorrupt, best.txid, best.highWater)
	}
	if size < need {
		return fmt.Errorf("%w: the file has %d bytes but its meta page (txid %d) covers %d bytes (%d pages of %d)",
			ErrTruncated, size, best.txid, need, best.highWater, best.pageSize)
	}
	if need > maxStoreBytes {
		return fmt.Errorf("%w: meta page (txid %d) claims %d bytes; an identity store stays far below %d", ErrCorrupt, best.txid, need, maxStoreBytes)
	}
	data := make([]byte, need)
	if _, err := f.ReadAt(data, 0); err != nil {
		return fmt.Errorf("%w: reading %d bytes: %v", ErrTruncated, need, err)
	}
	w := pageWalker{data: data, pageSize: int(best.pageSize), highWater: best.highWater, owner: map[uint64]string{}}
	// bbolt follows page ids, element offsets and overflow counts from the
	// file without bounds checks (and bbolt's own Check loops over overflow
	// counts), so walk the reachable pages first: every id in range, every
	// page referenced once, every element inside its page.
	if best.freelist != boltNoFreelist {
		if err := w.freelist(best.freelist); err != nil {
			return err
		}
	}
	return w.tree(best.root, "root", 0)
}

// maxStoreBytes bounds the file Open reads into memory to walk it.
const maxStoreBytes = 256 << 20

// Page layout (bbolt internal/common/page.go): header {id u64, flags u16,
// count u16, overflow u32}; branch elements {pos u32, ksize u32, pgid u64};
// leaf elements {flags u32, pos u32, ksize u32, vsize u32}; pos counts from
// the element itself. A bucket value is {root u64, sequence u64}, followed by
// an inline leaf page when root is 0.
const (
	offPageCount    = 10
	offPageOverflow = 12
	elementSize     = 16
	bucketLeafFlag  = 0x01
	bucketHeaderLen = 16
	freelistBigCnt  = 0xffff // count field escape: the real count is the first u64
	maxTreeDepth    = 64
)

type pageWalker struct {
	data      []byte
	pageSize  int
	highWater uint64
	owner     map[uint64]string // page id → what references it
}

// load returns the bytes of page id and its overflow pages, claiming them.
func (w *pageWalker) load(id uint64, what string, flags uint16) ([]byte, error) {
	if id < 2 || id >= w.highWater {
		return nil, fmt.Errorf("%w: %s refers to page %d outside 2..%d", ErrCorrupt, what, id, w.highWater-1)
	}
	off := int(id) * w.pageSize
	ne := binary.NativeEndian
	hdr := w.data[off : off+boltPageHeaderSize]
	gotID, gotFlags, overflow := ne.Uint64(hdr), ne.Uint16(hdr[offPageFlags:]), uint64(ne.Uint32(hdr[offPageOverflow:]))
	if gotID != id || gotFlags&flags == 0 {
		return nil, fmt.Errorf("%w: %s page %d has a damaged header (id %d, flags %#x)", ErrCorrupt, what, id, gotID, gotFlags)
	}
	if id+overflow >= w.highWater {
		return nil, fmt.Errorf("%w: %s page %d overflows by %d pages past the end (%d)", ErrCorrupt, what, id, overflow, w.highWater)
	}
	for p := id; p <= id+overflow; p++ {
		if prev, dup := w.owner[p]; dup {
			return nil, fmt.Errorf("%w: page %d is used by both %s and %s", ErrCorrupt, p, prev, what)
		}
		w.owner[p] = what
	}
	return w.data[off : off+int(overflow+1)*w.pageSize], nil
}

func (w *pageWalker) freelist(id uint64) error {
	p, err := w.load(id, "the freelist", pageFlagFreelist)
	if err != nil {
		return err
	}
	ne := binary.NativeEndian
	count, start := uint64(ne.Uint16(p[offPageCount:])), uint64(boltPageHeaderSize)
	if count == freelistBigCnt {
		if len(p) < boltPageHeaderSize+8 {
			return fmt.Errorf("%w: freelist page %d is too short", ErrCorrupt, id)
		}
		count, start = ne.Uint64(p[boltPageHeaderSize:]), boltPageHeaderSize+8
	}
	if count > uint64(len(p))/8 || start+count*8 > uint64(len(p)) {
		return fmt.Errorf("%w: freelist page %d lists %d ids, more than fit", ErrCorrupt, id, count)
	}
	for i := range count {
		if free := ne.Uint64(p[start+i*8:]); free < 2 || free >= w.highWater {
			return fmt.Errorf("%w: freelist page %d lists page %d outside 2..%d", ErrCorrupt, id, free, w.highWater-1)
		}
	}
	return nil
}

func (w *pageWalker) tree(id uint64, what string, depth int) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("%w: %s is nested deeper than %d levels", ErrCorrupt, what, maxTreeDepth)
	}
	p, err := w.load(id, what, pageFlagBranch|pageFlagLeaf)
	if err != nil {
		return err
	}
	return w.node(p, what, depth)
}

// node checks one branch or leaf page (p may be an inline page inside a
// bucket value) and descends.
func (w *pageWalker) node(p []byte, what string, depth int) error {
	ne := binary.NativeEndian
	if len(p) < boltPageHeaderSize {
		return fmt.Errorf("%w: %s: page of %d bytes", ErrCorrupt, what, len(p))
	}
	flags, count := ne.Uint16(p[offPageFlags:]), int(ne.Uint16(p[offPageCount:]))
	if boltPageHeaderSize+count*elementSize > len(p) {
		return fmt.Errorf("%w: %s: %d elements do not fit in %d bytes", ErrCorrupt, what, count, len(p))
	}
	for i := range count {
		el := boltPageHeaderSize + i*elementSize
		e := p[el : el+elementSize]
		switch {
		case flags&pageFlagBranch != 0:
			pos, ksize := uint64(ne.Uint32(e[0:])), uint64(ne.Uint32(e[4:]))
			if uint64(el)+pos+ksize > uint64(len(p)) {
				return fmt.Errorf("%w: %s: branch element %d points past its page", ErrCorrupt, what, i)
			}
			if err := w.tree(ne.Uint64(e[8:]), what, depth+1); err != nil {
				return err
			}
		case flags&pageFlagLeaf != 0:
			eflags, pos, ksize, vsize := ne.Uint32(e[0:]), uint64(ne.Uint32(e[4:])), uint64(ne.Uint32(e[8:])), uint64(ne.Uint32(e[12:]))
			kOff := uint64(el) + pos
			if kOff+ksize+vsize > uint64(len(p)) {
				return fmt.Errorf("%w: %s: leaf element %d points past its page", ErrCorrupt, what, i)
			}
			if eflags&bucketLeafFlag == 0 {
				continue
			}
			v := p[kOff+ksize : kOff+ksize+vsize]
			name := fmt.Sprintf("bucket %q", p[kOff:kOff+ksize])
			if len(v) < bucketHeaderLen {
				return fmt.Errorf("%w: %s: header of %d bytes", ErrCorrupt, name, len(v))
			}
			if root := ne.Uint64(v); root != 0 {
				if err := w.tree(root, name, depth+1); err != nil {
					return err
				}
			} else if err := w.node(v[bucketHeaderLen:], name+" (inline)", depth+1); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: %s: page is neither branch nor leaf (flags %#x)", ErrCorrupt, what, flags)
		}
	}
	return nil
}
