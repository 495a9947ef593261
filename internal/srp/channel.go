package srp

import (
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// DataDir is the data transfer direction of a Command.
type DataDir uint8

// Data directions.
const (
	DataNone DataDir = iota
	// DataIn: a read; the target RDMA-writes into the buffer.
	DataIn
	// DataOut: a write; the target RDMA-reads the buffer (or receives it
	// as immediate data).
	DataOut
)

func (d DataDir) String() string {
	switch d {
	case DataNone:
		return "none"
	case DataIn:
		return "in"
	case DataOut:
		return "out"
	}
	return "DataDir(" + strconv.Itoa(int(d)) + ")"
}

// Command is one SCSI command to submit. It is caller-owned and may be reused
// as soon as Submit returns (the IU is built in the channel's own transmit
// buffer); the data buffer it describes must stay untouched until Poll
// returns the command's Result.
type Command struct {
	ID     uint64 // caller's cookie, echoed in Result
	LUN    uint64 // integer LUN (LUNFromInt form on the wire)
	CDB    [16]byte
	CDBLen int
	Dir    DataDir
	// Addr, RKey and Len describe the registered data buffer (a direct
	// descriptor); the buffer must be registered on the channel's device.
	Addr uint64
	RKey uint32
	Len  uint32
	// Local and LKey are the same buffer as local memory, used to send a
	// small write as immediate data: with LKey != 0 as a second gather
	// element (zero copy), with LKey == 0 copied into the transmit IU.
	Local []byte
	LKey  uint32
}

// SenseMax is the largest sense buffer a Result carries (ib_srp's
// SCSI_SENSE_BUFFERSIZE).
const SenseMax = 96

// Result is the completion of one Command.
type Result struct {
	ID       uint64
	Status   byte // SCSI status; valid when Err == nil
	Sense    [SenseMax]byte
	SenseLen int
	// Residual is >0 for an underflow, <0 for an overflow (DIUNDER/DOUNDER
	// resp. DIOVER/DOOVER with their counts).
	Residual int64
	// Err is nil, or a transport error: ErrFlushed (channel failed; retry
	// elsewhere), ErrProtocol (the target answered this command with a
	// malformed response), ErrAborted (Abort), ErrLUNReset.
	Err error
	// Aborted is set when the command was ended by Abort or a LUN reset
	// instead of its own response.
	Aborted bool
}

// ChannelParams configure Dial.
type ChannelParams struct {
	// Src is the local address to bind; required (see verbs.DialParams).
	Src netip.Addr
	Dst netip.AddrPort
	// InitiatorExt and InitiatorPortGUID form the initiator port id.
	// InitiatorPortGUID defaults to the interface id of GID index 0 of
	// Port (as ib_srp does).
	InitiatorExt      uint64
	InitiatorPortGUID uint64
	TargetPortID      TargetPortID
	// MaxIU is the wanted req_it_iu_len. Default: DefaultImmDataOffset +
	// DefaultImmediateMax with Immediate, else NoImmITIULen.
	MaxIU int
	// TargetMaxIU is the target's largest IU if known in advance (the IOC
	// profile's send_size); the request never exceeds it.
	TargetMaxIU int
	// QueueDepth is the number of tags (commands in flight). Default 62
	// (ib_srp: queue_size 64 minus the RSP and TSK_MGMT slots).
	QueueDepth int
	// Immediate asks for immediate data; on a 0x10002 reject the login is
	// retried once without it.
	Immediate bool
	// MultiChannel logs in with MULTI instead of SINGLE (SINGLE makes the
	// target drop every other channel of the same I_T nexus).
	MultiChannel bool
	// IBCM sends the 64-byte IB CM form of the login request instead of
	// the 56-byte RDMA/CM form (for a provider that carries it, e.g. AF_IB).
	IBCM bool
	// Port is the local port whose GID 0 gives InitiatorPortGUID when that
	// is 0. Default: the port whose GID table holds Src (where the route
	// leaves), else 1.
	Port uint8
	// AckTimeout (IB exponent) and RetryCount of the RC QP; 0 keeps the
	// provider default resp. 7.
	AckTimeout, RetryCount uint8
	// ResolveTimeout bounds address/route resolution (default 1 s).
	ResolveTimeout time.Duration
	// AbortTimeout bounds every task management request (default 5 s,
	// SRP_ABORT_TIMEOUT_MS); on expiry the channel fails.
	AbortTimeout time.Duration
	Clock        clock.Clock
	Logger       *slog.Logger
}

// Defaults of ChannelParams.
const (
	DefaultQueueDepth   = 62
	DefaultImmediateMax = 8192
	// NoImmITIULen is the req_it_iu_len without immediate data: ib_srp's
	// value (48 + 16 + 20 + 12·16), which every ib_srpt accepts.
	NoImmITIULen        = 276
	DefaultAbortTimeout = 5 * time.Second
	defaultResolve      = time.Second
	defaultRetryCount   = 7
	infiniteRNRRetry    = 7
	responderResources  = 4        // ib_srp's value; the target RDMA-reads write data
	maxQueueDepth       = 1 << 14  // tags are 16-bit slot indexes
	maxTIIULen          = 64 << 10 // receive IUs are never sized beyond this
	maxReqLim           = 1 << 20  // a request limit beyond this is a credit overflow
	taskMgmtSlots       = 4        // task management requests in flight at once
	replySlots          = 4        // CRED_RSP/AER_RSP transmit IUs
	heartbeatSlots      = 2        // heartbeats in flight (send queue slots reserved)
	pollBatch           = 64       // completions taken from the CQ per call
	iuAlign             = 64       // IU ring stride alignment (a cache line)
	extraRecvs          = taskMgmtSlots + replySlots
	directOnlyCmdLen    = CmdLen + DirectBufLen // the largest IU we send without immediate data
	defaultLocalPortNum = 1
	maxGIDScan          = 256 // GID entries searched for the source address per port
)

// ChannelInfo describes a logged-in channel.
type ChannelInfo struct {
	MaxITIU, MaxTIIU int
	// ReqLim is the request limit (credits) now; InitialReqLim the one the
	// login granted.
	ReqLim, InitialReqLim int
	Immediate             bool
	// MultiChan is the login response's multi-channel result.
	MultiChan   MultiChanResult
	QueueDepth  int
	Local       netip.AddrPort
	Remote      netip.AddrPort
	InitiatorID InitiatorPortID
	TargetID    TargetPortID
	// NoCredit counts Submits refused for lack of credit; AERs counts
	// SRP_AER_REQs received; CredReqs SRP_CRED_REQs.
	NoCredit, AERs, CredReqs uint64
}

// WR id layout: the kind in the top byte, an index or sequence below.
const (
	wrKindShift = 56
	wrIndexMask = 1<<wrKindShift - 1
)

type wrKind uint8

const (
	wrCmd wrKind = iota + 1
	wrTsk
	wrReply
	wrHeartbeat
	wrRecv
)

func wrID(k wrKind, idx uint64) uint64 { return uint64(k)<<wrKindShift | idx&wrIndexMask }

// Command tags: slot index in the low 16 bits, a generation in bits 32..62,
// bit 31 (TagTskMgmt) clear. Task management tags set bit 31.
const (
	tagIndexMask = 1<<16 - 1
	tagGenShift  = 32
	tagGenMask   = 1<<31 - 1
)

func makeTag(idx int, gen uint32) Tag {
	return Tag(uint64(gen&tagGenMask)<<tagGenShift | uint64(idx))
}

// tagSlot is the initiator state of one tag.
type tagSlot struct {
	tag   Tag
	gen   uint32
	id    uint64
	lun   uint64
	dir   DataDir
	inUse bool
	// sendPending: the SEND of the IU has not completed (the TX IU and,
	// with immediate data, the caller's buffer are still referenced).
	sendPending bool
	// awaitingRsp: no Result produced yet.
	awaitingRsp bool
	// resultQueued: the Result sits in the ring, not yet returned by Poll.
	resultQueued bool
	// aborting: an ABORT TASK for it is in flight (tsk slot index).
	aborting int
	// stale is a tag of this slot that was ended locally (abort, reset);
	// one late response to it is tolerated (credit counted, dropped).
	stale      Tag
	staleValid bool
}

// tskSlot is one task management request.
type tskSlot struct {
	busy        bool
	sendPending bool
	rspPending  bool
	fn          TMFunc
	lun         uint64
	gen         uint32
	tag         Tag
	target      int // tag slot of ABORT TASK, -1 otherwise
	deadline    time.Time
	// waiter receives the outcome of a control-plane request (ResetLUN,
	// hasWaiter set); buffered, never closed.
	waiter    chan error
	hasWaiter bool
}

// replySlot is one CRED_RSP/AER_RSP transmit IU.
type replySlot struct {
	busy bool
}

// pendingReply is a target request whose reply waits for a free reply slot.
type pendingReply struct {
	op  Opcode
	tag Tag
}

// Channel is one SRP RDMA channel: an RC connection with a completed SRP
// login. See the package documentation for the concurrency contract.
type Channel struct {
	conn   verbs.Conn
	dev    verbs.Device
	log    *slog.Logger
	clk    clock.Clock
	remote string
	ready  <-chan struct{}

	info        ChannelInfo
	maxITIU     int
	maxTIIU     int
	immediate   bool
	immOffset   int
	txStride    int
	rxStride    int
	abortTmo    time.Duration
	txBuf       verbs.Buffer
	rxBuf       verbs.Buffer
	nRecv       int
	tskBase     int // TX IU index of the first task management slot
	replyBase   int // TX IU index of the first reply slot
	hbOutstand  int
	tskPending  int
	reqLim      int32
	noCredit    uint64
	aers        uint64
	credReqs    uint64
	outstanding int

	// mu serialises every call into the connection's data path (the verbs
	// contract allows one caller at a time) and the state below. The
	// queue thread takes it uncontended; Heartbeat, ResetLUN, Info and
	// Close take it briefly from the control plane.
	mu       sync.Mutex
	tags     []tagSlot
	free     []uint16 // stack of free tag slots
	tsk      [taskMgmtSlots]tskSlot
	replies  [replySlots]replySlot
	pending  []pendingReply // fixed capacity, never grows on the data path
	results  []Result       // ring of completed results
	resTag   []int32        // tag slot of each ring entry (-1: none)
	resHead  int
	resCount int
	wc       [pollBatch]verbs.Completion
	rsp      Rsp
	cmd      Cmd
	tm       TskMgmt
	credReq  CredReq
	aerReq   AerReq
	tlogout  TLogout
	sendWR   verbs.SendWR
	recvWR   verbs.RecvWR
	flushed  bool // outstanding commands completed after the failure
	closed   bool

	failedFlag atomic.Bool
	errMu      sync.Mutex
	err        error
	failedCh   chan struct{}
	closing    chan struct{}
	closeOnce  sync.Once
	watchers   sync.WaitGroup
	hbSeq      atomic.Uint64
	hbAcked    atomic.Uint64
}
