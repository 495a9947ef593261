package paths

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"

	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// Channel is what a path needs of one SRP channel; *srp.Channel implements
// it. The data-path methods (Submit, Poll, Abort, Outstanding, ArmNotify,
// AckNotify) are called by the owning queue thread only; the others by the
// control plane.
type Channel interface {
	Submit(cmd *srp.Command) error
	Poll(out []srp.Result) int
	Abort(id uint64) error
	Outstanding() int
	ArmNotify() error
	AckNotify() error
	NotifyFD() int
	// Ready is the simulator's readiness channel (nil on real hardware).
	Ready() <-chan struct{}

	Failed() <-chan struct{}
	Err() error
	ForceError() error
	Heartbeat() (seq uint64, err error)
	HeartbeatAcked() uint64
	Close() error
}

var _ Channel = (*srp.Channel)(nil)

// Connector makes one logged-in channel of a path for ublk queue q. The
// device calls it for every queue on AddPath and on every reconnect, from a
// control-plane goroutine; it may block until ctx ends.
type Connector func(ctx context.Context, queue int) (Channel, error)

// PathSpec describes a path for AddPath.
type PathSpec struct {
	// ID names the path in status, logs and admin calls (unique per device).
	ID string
	// Target names the target port; reconnects to one target are limited
	// by Policy.MaxReconnectsPerTarget.
	Target string
	// Priority orders the path groups (higher is better).
	Priority int
	// Device is the local RDMA device the path's channels use: every
	// queue's tag buffers are registered with it once.
	Device verbs.Device
	// DeviceName and Port are the local port, matched against PortEvent.
	DeviceName string
	Port       uint8
	// LUN is the path's LUN of this logical unit (it may differ per target
	// port).
	LUN uint64
	// Connect makes the path's channels.
	Connect Connector
}

// Waker wakes a queue thread that may be asleep; Wake must not block and
// may be called from any goroutine.
type Waker interface {
	Wake()
}

// CompletionFunc receives the outcome of an I/O on the queue thread: n
// bytes transferred (reads and writes) and nil, or one of the I/O sentinel
// errors (ErrNoPath, ErrIO, ErrTarget, ...; see Errno).
type CompletionFunc func(tag uint16, n int, err error)

// QueueConfig describes one ublk queue.
type QueueConfig struct {
	// Depth is the number of tags.
	Depth int
	// Mem holds every tag's buffer: tag t uses Mem[t*TagSize:(t+1)*TagSize].
	// It must stay valid (and, for real RDMA, mapped off-heap) until the
	// device is closed or the queue unbound; it is registered with each
	// path's RDMA device. Nil: given later with BindQueue (then TagSize,
	// Complete and Waker come with it).
	Mem     []byte
	TagSize int
	// Complete receives every I/O's outcome (queue thread).
	Complete CompletionFunc
	// Waker wakes the queue thread when the control plane changed
	// something it must act on (a path blocked or returned). May be nil
	// when the thread polls on its own (tests with a deadline loop).
	Waker Waker
}

// Config configures a Device.
type Config struct {
	// Name is the device's name in logs (e.g. the WWID).
	Name string
	// BlockSize is the LU's logical block size (512 or 4096).
	BlockSize int
	// Blocks is the capacity in logical blocks (I/O past it is ErrInvalid).
	Blocks uint64
	Policy Policy
	Queues []QueueConfig
	Clock  clock.Clock
	Logger *slog.Logger
	// Seed drives the reconnect jitter (reproducible schedules).
	Seed uint64
}

// MaxPaths is the most paths a device has at once (path sets are bitmasks).
const MaxPaths = 32

// maxTags bounds a queue's depth: the tag is the low 16 bits of a command id.
const maxTags = 1 << 16

// Op is a block operation.
type Op uint8

// Block operations (ublk's).
const (
	OpRead Op = iota
	OpWrite
	OpFlush
	OpDiscard
	OpWriteZeroes
)

var opNames = [...]string{OpRead: "read", OpWrite: "write", OpFlush: "flush", OpDiscard: "discard", OpWriteZeroes: "write-zeroes"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// Flags modify an I/O.
type Flags uint8

const (
	// FlagFUA: write through the target's cache.
	FlagFUA Flags = 1 << iota
	// FlagFailFast: md's REQ_FAILFAST_{DEV,TRANSPORT,DRIVER}: fail at once
	// when no path is usable instead of queueing, and do not retry on
	// the same path.
	FlagFailFast
	// FlagNoUnmap: a write-zeroes that must not deallocate.
	FlagNoUnmap
)

// IO is one block request.
type IO struct {
	Op    Op
	Flags Flags
	Off   int64 // bytes
	Len   int   // bytes
	Tag   uint16
}

// pathCounters are a path's data-path counters, shared by every queue
// (atomics, so Status reads them from any goroutine).
type pathCounters struct {
	completions atomic.Uint64
	errors      atomic.Uint64
	retries     atomic.Uint64
	reissued    atomic.Uint64
	aborts      atomic.Uint64
	inflight    atomic.Int64
	// latencyNS is the latest EWMA of one queue (the one that completed
	// last); good enough for status.
	latencyNS atomic.Int64
}

// atomicCounter is a counter written by one goroutine and read by any.
type atomicCounter struct{ v atomic.Int64 }

func (c *atomicCounter) add(n int64) { c.v.Add(n) }
func (c *atomicCounter) load() int64 { return c.v.Load() }
