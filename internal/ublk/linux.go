package ublk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uring"
)

// Ring sizes and retry timing of the kernel driver.
const (
	ctrlRingEntries   = 4
	charOpenBackoff   = 5 * time.Millisecond
	charOpenBackoffUp = 200 * time.Millisecond
	ctrlUserData      = 1
	// ctrlWaitSlice is how often a waiting control command checks its ctx.
	ctrlWaitSlice = 100 * time.Millisecond
)

// Linux is the Driver for the kernel's ublk_drv.
type Linux struct{}

// Probe reports whether the ublk control device can be opened here; the
// error says why not (module not loaded, not root). Tests skip with it.
func (Linux) Probe() error {
	fd, err := unix.Open(uapi.CtrlDevPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return &OpError{Op: "open " + uapi.CtrlDevPath, DevID: uapi.DevIDAny, Err: err}
	}
	return unix.Close(fd)
}

// PID returns the process id.
func (Linux) PID() int32 { return int32(os.Getpid()) }

// PIDAlive reports whether pid exists (kill(pid, 0) does not fail with ESRCH).
func (Linux) PIDAlive(pid int32) bool {
	return pid > 0 && !errors.Is(unix.Kill(int(pid), 0), unix.ESRCH)
}

// PageSize returns the system page size.
func (Linux) PageSize() int { return os.Getpagesize() }

// OpenControl opens /dev/ublk-control with an SQE128 ring (the 32-byte
// ublksrv_ctrl_cmd does not fit a 64-byte SQE; the driver rejects it).
func (Linux) OpenControl() (ControlConn, error) {
	fd, err := unix.Open(uapi.CtrlDevPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	r, err := uring.New(ctrlRingEntries, uring.SetupSQE128)
	if err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return &linuxControl{fd: fd, ring: r}, nil
}

type linuxControl struct {
	fd   int
	ring *uring.Ring
}

// Cmd submits one URING_CMD and waits for its CQE. Control serialises
// calls, so the ring holds at most one command. The driver's control
// commands cannot be cancelled, so the wait is sliced to notice ctx; when
// ctx ends the command is abandoned in flight (closing the ring later
// interrupts it).
func (c *linuxControl) Cmd(ctx context.Context, op uint32, hdr uapi.CtrlCmd, payload []byte) (int32, error) {
	sqe := c.ring.SQE()
	if sqe == nil {
		return 0, fmt.Errorf("control ring full")
	}
	uring.PrepURingCmd(sqe, c.fd, op, ctrlUserData)
	hdr.Addr = bufAddr(payload)
	hdr.Len = uint16(len(payload))
	hdr.Put(c.ring.Cmd(sqe))
	for {
		_, err := c.ring.SubmitAndWaitTimeout(1, ctrlWaitSlice)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.ETIME) {
			return 0, err
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("%w: %w", ErrCommandAbandoned, ctx.Err())
		}
	}
	cqe, ok := c.ring.Peek()
	if !ok {
		return 0, fmt.Errorf("control ring: no completion after wait")
	}
	return cqe.Res, nil
}

func (c *linuxControl) Close() error {
	return errors.Join(c.ring.Close(), unix.Close(c.fd))
}

// OpenCharDev opens /dev/ublkc<id>, retrying ENOENT (udev has not created
// the node yet) and EBUSY (udev is probing it) until ctx ends.
func (Linux) OpenCharDev(ctx context.Context, id uint32) (CharDev, error) {
	path := fmt.Sprintf("%s%d", uapi.CharDevPrefix, id)
	backoff := charOpenBackoff
	for {
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err == nil {
			return &linuxChar{fd: fd, pageSize: os.Getpagesize()}, nil
		}
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EBUSY) {
			return nil, err
		}
		if werr := waitBackoff(ctx, backoff); werr != nil {
			return nil, errors.Join(werr, err)
		}
		backoff = min(2*backoff, charOpenBackoffUp)
	}
}

type linuxChar struct {
	fd       int
	pageSize int
}

// OpenQueue creates the queue's ring (64-byte SQEs, COOP_TASKRUN where the
// kernel has it) and maps its descriptor array read-only.
func (c *linuxChar) OpenQueue(cfg QueueConfig) (QueueRing, error) {
	r, err := uring.New(cfg.Entries, uring.SetupCoopTaskrun)
	if errors.Is(err, unix.EINVAL) {
		r, err = uring.New(cfg.Entries, 0) // before 5.19
	}
	if err != nil {
		return nil, err
	}
	desc, err := unix.Mmap(c.fd, uapi.DescMmapOffset(cfg.ID, c.pageSize), uapi.DescMmapLen(cfg.Depth, c.pageSize),
		unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("mmap descriptors: %w", err)
	}
	return &linuxQueue{ring: r, fd: c.fd, desc: desc}, nil
}

// Close closes the char device. Queues must be closed first (munmap and
// ring close before DEL_DEV, pitfall 8).
func (c *linuxChar) Close() error { return unix.Close(c.fd) }

type linuxQueue struct {
	ring *uring.Ring
	fd   int
	desc []byte
}

func (q *linuxQueue) PrepIO(op uint32, cmd uapi.IOCmd, userData uint64) bool {
	sqe := q.ring.SQE()
	if sqe == nil {
		return false
	}
	uring.PrepURingCmd(sqe, q.fd, op, userData)
	cmd.Put(q.ring.Cmd(sqe))
	return true
}

func (q *linuxQueue) PrepPollAdd(fd int, userData uint64) bool {
	sqe := q.ring.SQE()
	if sqe == nil {
		return false
	}
	uring.PrepPollAdd(sqe, fd, uring.PollIn, userData)
	return true
}

func (q *linuxQueue) PrepPollRemove(target, userData uint64) bool {
	sqe := q.ring.SQE()
	if sqe == nil {
		return false
	}
	uring.PrepPollRemove(sqe, target, userData)
	return true
}

func (q *linuxQueue) Submit(wait bool) error {
	var n uint32
	if wait {
		n = 1
	}
	_, err := q.ring.Submit(n)
	return err
}

// SubmitTimeout bounds the wait with EXT_ARG (5.11+; every kernel with
// ublk has it).
func (q *linuxQueue) SubmitTimeout(d time.Duration) error {
	_, err := q.ring.SubmitAndWaitTimeout(1, d)
	if errors.Is(err, unix.ETIME) {
		return nil
	}
	return err
}

func (q *linuxQueue) Peek() (uint64, int32, bool) {
	c, ok := q.ring.Peek()
	return c.UserData, c.Res, ok
}

func (q *linuxQueue) Desc(tag uint16) uapi.IODesc {
	d, _ := uapi.DecodeIODesc(q.desc[int(tag)*uapi.IODescSize:])
	return d
}

func (q *linuxQueue) Close() error {
	return errors.Join(unix.Munmap(q.desc), q.ring.Close())
}
