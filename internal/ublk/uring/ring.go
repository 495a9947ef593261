package uring

import (
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SetupFlags are IORING_SETUP_* flags.
type SetupFlags uint32

// Setup flags used here.
const (
	SetupCQSize      SetupFlags = 1 << 3
	SetupCoopTaskrun SetupFlags = 1 << 8
	SetupSQE128      SetupFlags = 1 << 10
	SetupCQE32       SetupFlags = 1 << 11
)

// Opcodes (IORING_OP_*) this package prepares.
const (
	OpNop      uint8 = 0
	OpFsync    uint8 = 3
	OpPollAdd  uint8 = 6
	OpPollRem  uint8 = 7
	OpRead     uint8 = 22
	OpWrite    uint8 = 23
	OpURingCmd uint8 = 46
)

// Enter flags.
const (
	enterGetEvents = 1 << 0
	enterExtArg    = 1 << 3
)

// Feature bits reported by io_uring_setup.
const (
	FeatSingleMmap = 1 << 0
	FeatExtArg     = 1 << 8
)

// mmap offsets of the three regions (IORING_OFF_*).
const (
	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000
)

// Sizes of the kernel structs.
const (
	paramsSize = 120
	sqeSize    = 64
	cqeSize    = 16
	// CmdOffset is where the cmd area of a URING_CMD begins in an SQE.
	CmdOffset = 48
	// CmdSize64 and CmdSize128 are the cmd area's size in a 64- or 128-byte SQE.
	CmdSize64  = sqeSize - CmdOffset
	CmdSize128 = 2*sqeSize - CmdOffset
	// PollIn is POLLIN for PrepPollAdd.
	PollIn = unix.POLLIN
)

// params mirrors struct io_uring_params.
type params struct {
	sqEntries    uint32
	cqEntries    uint32
	flags        uint32
	sqThreadCPU  uint32
	sqThreadIdle uint32
	features     uint32
	wqFD         uint32
	resv         [3]uint32
	sqOff        sqringOffsets
	cqOff        cqringOffsets
}

type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// SQE mirrors struct io_uring_sqe (the first 64 bytes; a 128-byte SQE's
// second half is cmd area only).
type SQE struct {
	Opcode      uint8
	Flags       uint8
	IOPrio      uint16
	FD          int32
	Off         uint64 // cmd_op (u32) + pad (u32, must be 0) for URING_CMD
	Addr        uint64
	Len         uint32
	OpFlags     uint32 // rw_flags, poll32_events, fsync_flags, uring_cmd_flags
	UserData    uint64
	BufIndex    uint16
	Personality uint16
	SpliceFDIn  int32
	Addr3       uint64
	pad2        uint64
}

// CQE mirrors struct io_uring_cqe.
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

var (
	_ [paramsSize - unsafe.Sizeof(params{})]byte
	_ [unsafe.Sizeof(params{}) - paramsSize]byte
	_ [sqeSize - unsafe.Sizeof(SQE{})]byte
	_ [unsafe.Sizeof(SQE{}) - sqeSize]byte
	_ [cqeSize - unsafe.Sizeof(CQE{})]byte
	_ [unsafe.Sizeof(CQE{}) - cqeSize]byte
	_ [unsafe.Offsetof(params{}.sqOff) - 40]byte
	_ [40 - unsafe.Offsetof(params{}.sqOff)]byte
	_ [unsafe.Offsetof(params{}.cqOff) - 80]byte
	_ [80 - unsafe.Offsetof(params{}.cqOff)]byte
	_ [unsafe.Offsetof(SQE{}.UserData) - 32]byte
	_ [32 - unsafe.Offsetof(SQE{}.UserData)]byte
	_ [unsafe.Offsetof(SQE{}.Addr3) - CmdOffset]byte
	_ [CmdOffset - unsafe.Offsetof(SQE{}.Addr3)]byte
)

// Ring is one io_uring instance. It is not safe for concurrent use: one
// goroutine (for ublk queues, one locked OS thread) owns it.
type Ring struct {
	fd       int
	flags    SetupFlags
	features uint32
	sqeSize  int

	sqRing, cqRing, sqeMem []byte

	sqHead, sqTail, sqMask *uint32
	sqEntries              uint32
	sqArray                []uint32
	cqHead, cqTail, cqMask *uint32
	cqEntries              uint32
	cqes                   []CQE
	sqes                   unsafe.Pointer

	// localTail counts SQEs handed out; submitted counts those the kernel
	// has consumed. localTail-submitted are prepared but not yet submitted.
	localTail uint32
	submitted uint32

	enters, eintr atomic.Uint64

	// The EXT_ARG wait's argument and timespec live in the Ring (heap,
	// never moved) because the kernel reads them through a pointer.
	extArg getEventsArg
	ts     kernelTimespec
}

// getEventsArg mirrors struct io_uring_getevents_arg.
type getEventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	minWait   uint32
	ts        uint64
}

// kernelTimespec mirrors struct __kernel_timespec.
type kernelTimespec struct {
	sec  int64
	nsec int64
}

// Stats counts ring events that tests and metrics read (from any goroutine).
type Stats struct {
	Enters uint64 // io_uring_enter calls
	EINTR  uint64 // io_uring_enter calls interrupted by a signal and retried
}

// New sets up a ring with at least entries submission slots.
func New(entries uint32, flags SetupFlags) (*Ring, error) {
	var p params
	p.flags = uint32(flags)
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, &OpError{Op: "io_uring_setup", Err: errno}
	}
	r := &Ring{fd: int(fd), flags: flags, features: p.features, sqeSize: sqeSize}
	if flags&SetupSQE128 != 0 {
		r.sqeSize = 2 * sqeSize
	}
	if err := r.mapRings(&p); err != nil {
		r.unmap()
		_ = unix.Close(r.fd)
		return nil, err
	}
	return r, nil
}

func (r *Ring) mapRings(p *params) error {
	var err error
	sqLen := int(p.sqOff.array + p.sqEntries*4)
	cqLen := int(p.cqOff.cqes + p.cqEntries*cqeSize)
	if r.sqRing, err = unix.Mmap(r.fd, offSQRing, sqLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return &OpError{Op: "mmap sq ring", Err: err}
	}
	if r.cqRing, err = unix.Mmap(r.fd, offCQRing, cqLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return &OpError{Op: "mmap cq ring", Err: err}
	}
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*r.sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return &OpError{Op: "mmap sqes", Err: err}
	}
	r.sqHead = u32At(r.sqRing, p.sqOff.head)
	r.sqTail = u32At(r.sqRing, p.sqOff.tail)
	r.sqMask = u32At(r.sqRing, p.sqOff.ringMask)
	r.sqEntries = *u32At(r.sqRing, p.sqOff.ringEntries)
	r.sqArray = unsafe.Slice(u32At(r.sqRing, p.sqOff.array), r.sqEntries)
	r.cqHead = u32At(r.cqRing, p.cqOff.head)
	r.cqTail = u32At(r.cqRing, p.cqOff.tail)
	r.cqMask = u32At(r.cqRing, p.cqOff.ringMask)
	r.cqEntries = *u32At(r.cqRing, p.cqOff.ringEntries)
	r.cqes = unsafe.Slice((*CQE)(unsafe.Pointer(&r.cqRing[p.cqOff.cqes])), r.cqEntries)
	r.sqes = unsafe.Pointer(&r.sqeMem[0])
	// The SQ index array maps slot i to SQE i once and for all.
	for i := range r.sqArray {
		r.sqArray[i] = uint32(i)
	}
	r.localTail = atomic.LoadUint32(r.sqTail)
	r.submitted = r.localTail
	return nil
}

func u32At(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }

func (r *Ring) unmap() {
	for _, m := range []*[]byte{&r.sqeMem, &r.cqRing, &r.sqRing} {
		if *m != nil {
			_ = unix.Munmap(*m)
			*m = nil
		}
	}
}

// Close unmaps the rings and closes the ring fd. In-flight requests are
// cancelled by the kernel (asynchronously for some request types).
func (r *Ring) Close() error {
	if r.fd < 0 {
		return nil
	}
	r.unmap()
	err := unix.Close(r.fd)
	r.fd = -1
	if err != nil {
		return &OpError{Op: "close", Err: err}
	}
	return nil
}

// FD is the ring's file descriptor.
func (r *Ring) FD() int { return r.fd }

// Features returns the IORING_FEAT_* bits the kernel reported.
func (r *Ring) Features() uint32 { return r.features }

// SQEntries is the number of submission slots.
func (r *Ring) SQEntries() uint32 { return r.sqEntries }

// CmdSize is the size of a URING_CMD's cmd area in this ring's SQEs.
func (r *Ring) CmdSize() int { return r.sqeSize - CmdOffset }

// Stats returns the ring's counters.
func (r *Ring) Stats() Stats { return Stats{Enters: r.enters.Load(), EINTR: r.eintr.Load()} }

// Pending is the number of prepared SQEs not yet submitted.
func (r *Ring) Pending() uint32 { return r.localTail - r.submitted }

// SQE returns a zeroed submission slot, or nil when the SQ is full (the
// caller submits and retries). The slot is submitted by the next Submit.
func (r *Ring) SQE() *SQE {
	head := atomic.LoadUint32(r.sqHead)
	if r.localTail-head >= r.sqEntries {
		return nil
	}
	idx := r.localTail & *r.sqMask
	r.localTail++
	p := unsafe.Add(r.sqes, uintptr(idx)*uintptr(r.sqeSize))
	clear(unsafe.Slice((*byte)(p), r.sqeSize))
	return (*SQE)(p)
}

// Cmd returns the cmd area of sqe (16 bytes, or 80 with SetupSQE128).
// sqe must come from this ring's SQE.
func (r *Ring) Cmd(sqe *SQE) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(sqe), CmdOffset)), r.sqeSize-CmdOffset)
}

// Submit publishes the prepared SQEs and, when wait > 0, blocks until at
// least wait completions are ready. An io_uring_enter interrupted by a signal
// (frequent under Go: SIGURG preemption, GC) is retried; SQEs already
// consumed by the kernel are not submitted twice (pitfall 10). It returns the
// number of SQEs submitted.
func (r *Ring) Submit(wait uint32) (int, error) {
	atomic.StoreUint32(r.sqTail, r.localTail)
	total := 0
	for {
		toSubmit := r.localTail - r.submitted
		var flags uintptr
		want := uint32(0)
		if wait > 0 && r.Ready() < wait {
			flags |= enterGetEvents
			want = wait
		}
		if toSubmit == 0 && flags == 0 {
			return total, nil
		}
		r.enters.Add(1)
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(want), flags, 0, 0)
		switch errno {
		case 0:
		case unix.EINTR:
			r.eintr.Add(1)
			continue
		case unix.EAGAIN, unix.EBUSY:
			// The CQ is full or the kernel lacks memory: the caller must reap.
			if r.Ready() > 0 {
				return total, nil
			}
			return total, &OpError{Op: "io_uring_enter", Err: errno}
		default:
			return total, &OpError{Op: "io_uring_enter", Err: errno}
		}
		r.submitted += uint32(n)
		total += int(n)
		if toSubmit > 0 && n == 0 {
			return total, &OpError{Op: "io_uring_enter", Err: ErrNoProgress}
		}
		if r.localTail == r.submitted && (wait == 0 || r.Ready() >= wait) {
			return total, nil
		}
	}
}

// SubmitAndWaitTimeout is Submit with a bound on the wait: when fewer than
// wait completions are ready d after the call it returns an error wrapping
// unix.ETIME (SQEs are submitted either way). The bound is kept across
// EINTR and across an enter that submitted (the kernel then reports the
// submission, not the timeout). Kernels without IORING_FEAT_EXT_ARG
// (< 5.11) wait without a bound.
func (r *Ring) SubmitAndWaitTimeout(wait uint32, d time.Duration) (int, error) {
	if r.features&FeatExtArg == 0 || wait == 0 {
		return r.Submit(wait)
	}
	deadline := time.Now().Add(d)
	atomic.StoreUint32(r.sqTail, r.localTail)
	total := 0
	for {
		toSubmit := r.localTail - r.submitted
		if toSubmit == 0 && r.Ready() >= wait {
			return total, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			if toSubmit == 0 {
				return total, &OpError{Op: "io_uring_enter", Err: unix.ETIME}
			}
			left = 0 // submit, and only look whether something is ready
		}
		r.ts = kernelTimespec{sec: int64(left / time.Second), nsec: int64(left % time.Second)}
		r.extArg = getEventsArg{ts: uint64(uintptr(unsafe.Pointer(&r.ts)))}
		r.enters.Add(1)
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(wait),
			enterGetEvents|enterExtArg, uintptr(unsafe.Pointer(&r.extArg)), unsafe.Sizeof(r.extArg))
		switch errno {
		case 0:
		case unix.EINTR:
			r.eintr.Add(1)
			continue
		case unix.EAGAIN, unix.EBUSY:
			// As in Submit: the CQ is full or memory is short; reap first.
			if r.Ready() > 0 {
				return total, nil
			}
			return total, &OpError{Op: "io_uring_enter", Err: errno}
		default:
			// ETIME: nothing was submitted by this call (the kernel returns
			// the submitted count instead of a wait error).
			return total, &OpError{Op: "io_uring_enter", Err: errno}
		}
		r.submitted += uint32(n)
		total += int(n)
		if toSubmit > 0 && n == 0 {
			return total, &OpError{Op: "io_uring_enter", Err: ErrNoProgress}
		}
	}
}

// Ready is the number of completions waiting in the CQ.
func (r *Ring) Ready() uint32 {
	return atomic.LoadUint32(r.cqTail) - atomic.LoadUint32(r.cqHead)
}

// Peek returns the next completion and consumes it; ok is false when the CQ
// is empty.
func (r *Ring) Peek() (c CQE, ok bool) {
	head := atomic.LoadUint32(r.cqHead)
	if head == atomic.LoadUint32(r.cqTail) {
		return CQE{}, false
	}
	c = r.cqes[head&*r.cqMask]
	atomic.StoreUint32(r.cqHead, head+1)
	return c, true
}

// PrepNop prepares a NOP.
func PrepNop(sqe *SQE, userData uint64) {
	sqe.Opcode = OpNop
	sqe.UserData = userData
}

// PrepRead prepares a read of len(b) bytes at off into b. b must stay
// valid and unmoved (off-heap or pinned) until the completion.
func PrepRead(sqe *SQE, fd int, b []byte, off uint64, userData uint64) {
	prepRW(sqe, OpRead, fd, b, off, userData)
}

// PrepWrite prepares a write of b at off; b as for PrepRead.
func PrepWrite(sqe *SQE, fd int, b []byte, off uint64, userData uint64) {
	prepRW(sqe, OpWrite, fd, b, off, userData)
}

func prepRW(sqe *SQE, op uint8, fd int, b []byte, off, userData uint64) {
	sqe.Opcode = op
	sqe.FD = int32(fd)
	sqe.Off = off
	if len(b) > 0 {
		sqe.Addr = uint64(uintptr(unsafe.Pointer(&b[0])))
	}
	sqe.Len = uint32(len(b))
	sqe.UserData = userData
}

// PrepFsync prepares an fsync of fd.
func PrepFsync(sqe *SQE, fd int, userData uint64) {
	sqe.Opcode = OpFsync
	sqe.FD = int32(fd)
	sqe.UserData = userData
}

// PrepPollAdd prepares a one-shot poll for events on fd.
func PrepPollAdd(sqe *SQE, fd int, events uint32, userData uint64) {
	sqe.Opcode = OpPollAdd
	sqe.FD = int32(fd)
	sqe.OpFlags = events
	sqe.UserData = userData
}

// PrepPollRemove prepares an IORING_OP_POLL_REMOVE of the poll whose SQE
// had user_data target. Its own CQE (userData) has res 0 when the poll was
// found and cancelled (the poll then completes with -ECANCELED), -ENOENT
// when it was not found (already completed) and -EALREADY when it was
// completing. Removing the poll drops the ring's reference to the polled
// file: an armed POLL_ADD keeps a file alive after its fd is closed.
func PrepPollRemove(sqe *SQE, target, userData uint64) {
	sqe.Opcode = OpPollRem
	sqe.FD = -1
	sqe.Addr = target
	sqe.UserData = userData
}

// PrepURingCmd prepares an IORING_OP_URING_CMD with cmd_op op on fd. The
// caller fills the cmd area (Ring.Cmd). The pad after cmd_op stays zero, as
// ublk_drv requires.
func PrepURingCmd(sqe *SQE, fd int, op uint32, userData uint64) {
	sqe.Opcode = OpURingCmd
	sqe.FD = int32(fd)
	sqe.Off = uint64(op)
	sqe.UserData = userData
}
