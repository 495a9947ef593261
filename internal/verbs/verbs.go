package verbs

import (
	"context"
	"net/netip"
	"time"
)

// Fabric enumerates and opens the RDMA devices of this host.
type Fabric interface {
	// Devices lists the RDMA devices present now.
	Devices() ([]DeviceInfo, error)
	// Open opens a device by name (e.g. "rxe0", "mlx5_0").
	Open(name string) (Device, error)
}

// Device is one opened RDMA device (an ibv_context with its protection domain).
type Device interface {
	Info() DeviceInfo
	// Port returns the attributes of port n (1-based, as in verbs).
	Port(n uint8) (PortAttr, error)
	// GID returns entry index of port n's GID table.
	GID(port uint8, index int) (GID, error)
	// PKey returns entry index of port n's P_Key table; ErrIndexRange past its end.
	PKey(port uint8, index uint16) (uint16, error)
	// PKeyIndex resolves a P_Key to its current index (indexes can change).
	PKeyIndex(port uint8, pkey uint16) (uint16, error)
	// Events delivers the device's asynchronous events (control plane). The
	// channel is closed when the device is closed.
	Events() <-chan AsyncEvent
	// AllocBuffer allocates off-heap, page-aligned memory of size bytes and
	// registers it with the device.
	AllocBuffer(size int, access Access) (Buffer, error)
	// Register registers caller-owned memory, which must be off-heap (mmap'd)
	// and stay mapped until the returned Buffer is closed: ublk's per-tag I/O
	// buffers are registered with every device a path of theirs uses.
	Register(mem []byte, access Access) (Buffer, error)
	// Dial resolves the route from p.Src to p.Dst through this device and
	// connects an RC queue pair with p.Private as the CM REQ private data.
	// It returns the connection and the REP private data. A reject is a
	// *RejectError carrying the REJ private data.
	Dial(ctx context.Context, p DialParams) (Conn, []byte, error)
	// MAD opens the management datagram port of port n (InfiniBand only;
	// ErrNotSupported on RoCE).
	MAD(port uint8) (MADPort, error)
	Close() error
}

// DeviceInfo describes a device and its limits.
type DeviceInfo struct {
	Name         string
	NodeGUID     uint64
	Ports        uint8
	MaxQPWR      int // max work requests per queue
	MaxSGE       int // max scatter/gather entries per work request
	MaxQPRdAtom  int // max outstanding RDMA READs as responder (responder_resources bound)
	MaxQPInitRd  int // max outstanding RDMA READs as initiator (initiator_depth bound)
	MaxMRSize    uint64
	FirmwareVers string
}

// Access is a set of memory-region access rights.
type Access uint32

// Access rights, as ibv_access_flags.
const (
	AccessLocalWrite  Access = 1 << 0
	AccessRemoteWrite Access = 1 << 1
	AccessRemoteRead  Access = 1 << 2
)

// AccessData is what SRP data buffers need: the target RDMA-writes read data
// into them and RDMA-reads write data from them.
const AccessData = AccessLocalWrite | AccessRemoteWrite | AccessRemoteRead

// Buffer is registered memory.
type Buffer interface {
	// Bytes is the memory itself; its address is stable until Close.
	Bytes() []byte
	// Addr is the address the remote side uses in RDMA requests
	// (the registered virtual address of Bytes()[0]).
	Addr() uint64
	LKey() uint32
	RKey() uint32
	// Close deregisters the memory (and unmaps it if AllocBuffer made it).
	Close() error
}

// DialParams are the parameters of an RC connection set up through RDMA/CM.
type DialParams struct {
	// Src is the local address to bind before address resolution. It must be
	// set: without a bound source two endpoints in one host short-circuit
	// over loopback (testbed README).
	Src netip.Addr
	Dst netip.AddrPort
	// ResolveTimeout bounds address and route resolution each (kernel: 1 s).
	ResolveTimeout time.Duration
	Private        []byte // CM REQ private data; at most 56 bytes on RDMA/CM
	ResponderRes   uint8  // clamped to DeviceInfo.MaxQPRdAtom
	InitiatorDepth uint8  // clamped to DeviceInfo.MaxQPInitRd
	RetryCount     uint8  // transport retries, 0..7
	RNRRetry       uint8  // 7 = infinite
	// AckTimeout is the IB local ACK timeout exponent (4.096 µs × 2^n);
	// 0 leaves the provider's route-derived default.
	AckTimeout uint8
	SendDepth  int // send queue entries
	RecvDepth  int // receive queue entries
	MaxSendSGE int
}

// ackTimeoutUnit is the IB local ACK timeout unit: the timeout is
// 4.096 µs × 2^exponent (IBTA C9-140 / ibv_qp_attr.timeout).
const ackTimeoutUnit = 4096 * time.Nanosecond

// maxAckTimeout is the largest ACK timeout exponent (a 5-bit field).
const maxAckTimeout = 31

// AckTimeoutDuration converts an ACK timeout exponent into a duration
// (4.096 µs × 2^exp); exponents above 31 are clamped.
func AckTimeoutDuration(exp uint8) time.Duration {
	if exp > maxAckTimeout {
		exp = maxAckTimeout
	}
	return ackTimeoutUnit << exp
}

// RetryBudget is how long an RC requester keeps retransmitting an
// unanswered request before it completes with StatusRetryExcErr: the first
// transmission plus retryCount retries, each waiting one ACK timeout.
func RetryBudget(retryCount, ackTimeout uint8) time.Duration {
	return (time.Duration(retryCount) + 1) * AckTimeoutDuration(ackTimeout)
}

// Conn is one RC queue pair with its connection-manager identity.
//
// The data-path methods follow the package's concurrency contract: one
// goroutine, non-blocking, allocation free.
type Conn interface {
	// PostSend posts one send-queue work request. It does not retain wr.
	PostSend(wr *SendWR) error
	// PostRecv posts one receive work request. It does not retain wr.
	PostRecv(wr *RecvWR) error
	// Poll moves up to len(out) completions into out and returns how many.
	Poll(out []Completion) int
	// ArmNotify requests that NotifyFD become readable at the next
	// completion. After arming, callers Poll once more before sleeping to
	// close the race with a completion that arrived in between.
	ArmNotify() error
	// NotifyFD is a file descriptor that becomes readable when the armed
	// notification fires (ibv_comp_channel's fd); -1 if the provider has none.
	// Readers drain it with AckNotify.
	NotifyFD() int
	// AckNotify consumes a fired notification (ibv_get_cq_event + ack).
	AckNotify() error
	// CMEvents delivers connection-manager events (control plane).
	CMEvents() <-chan CMEvent
	// ForceError moves the QP to the error state: no further DMA can land in
	// registered memory; outstanding work completes with StatusFlushErr.
	ForceError() error
	// Disconnect sends a DREQ (rdma_disconnect); idempotent.
	Disconnect() error
	// Close disconnects if needed and releases the QP, CQ and CM id.
	Close() error
	// Local and Remote describe the connection's endpoints.
	Local() netip.AddrPort
	Remote() netip.AddrPort
	// Device is the device the route resolved to.
	Device() Device
}

// Opcode is a send-queue operation.
type Opcode uint8

// Send-queue operations.
const (
	OpSend Opcode = iota
	// OpRDMAWrite with no SGEs and zero length is the heartbeat: success
	// means the peer's RC QP ACKed (IBTA C9-88: the R_Key of a zero-length
	// RDMA operation is not validated).
	OpRDMAWrite
	OpRDMARead
)

func (o Opcode) String() string {
	switch o {
	case OpSend:
		return "SEND"
	case OpRDMAWrite:
		return "RDMA_WRITE"
	case OpRDMARead:
		return "RDMA_READ"
	}
	return "Opcode(" + itoa(int(o)) + ")"
}

// MaxSGE is the largest scatter/gather list a work request carries here.
const MaxSGE = 4

// SGE is one scatter/gather entry of registered memory.
type SGE struct {
	Addr   uint64
	Length uint32
	LKey   uint32
}

// SendWR is a send-queue work request. Fixed-size so it never allocates.
type SendWR struct {
	ID       uint64 // echoed in the completion
	Op       Opcode
	SGE      [MaxSGE]SGE
	NumSGE   int
	Signaled bool
	// RemoteAddr and RKey address the peer's memory for RDMA operations.
	RemoteAddr uint64
	RKey       uint32
}

// RecvWR is a receive-queue work request.
type RecvWR struct {
	ID     uint64
	SGE    [MaxSGE]SGE
	NumSGE int
}

// Completion is one work completion.
type Completion struct {
	ID      uint64
	Status  Status
	Op      CompletionOp
	ByteLen uint32
	// VendorErr is the provider's vendor_err for diagnostics.
	VendorErr uint32
}

// CompletionOp tells which queue and operation a completion belongs to.
type CompletionOp uint8

// Completion operations.
const (
	CompSend CompletionOp = iota
	CompRDMAWrite
	CompRDMARead
	CompRecv
)

func (o CompletionOp) String() string {
	switch o {
	case CompSend:
		return "SEND"
	case CompRDMAWrite:
		return "RDMA_WRITE"
	case CompRDMARead:
		return "RDMA_READ"
	case CompRecv:
		return "RECV"
	}
	return "CompletionOp(" + itoa(int(o)) + ")"
}

// Status is a work-completion status (the ibv_wc_status values that matter).
type Status uint8

// Completion statuses. The names follow ibv_wc_status.
const (
	StatusSuccess Status = iota
	StatusLocLenErr
	StatusLocQPOpErr
	StatusLocProtErr
	StatusWRFlushErr
	StatusRemInvReqErr
	StatusRemAccessErr
	StatusRemOpErr
	StatusRetryExcErr
	StatusRNRRetryExcErr
	StatusGeneralErr
)

// StatusFlushErr is the usual short name of StatusWRFlushErr.
const StatusFlushErr = StatusWRFlushErr

var statusNames = [...]string{
	StatusSuccess:        "success",
	StatusLocLenErr:      "local length error",
	StatusLocQPOpErr:     "local QP operation error",
	StatusLocProtErr:     "local protection error",
	StatusWRFlushErr:     "work request flushed",
	StatusRemInvReqErr:   "remote invalid request",
	StatusRemAccessErr:   "remote access error",
	StatusRemOpErr:       "remote operation error",
	StatusRetryExcErr:    "transport retry counter exceeded",
	StatusRNRRetryExcErr: "RNR retry counter exceeded",
	StatusGeneralErr:     "general error",
}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "Status(" + itoa(int(s)) + ")"
}

// CMEventKind is a connection-manager event on an established connection.
type CMEventKind uint8

// Connection-manager events.
const (
	CMDisconnected CMEventKind = iota + 1 // the peer sent a DREQ, or the connection broke
	CMTimewaitExit
	CMDeviceRemoval
	CMAddrChange
)

func (k CMEventKind) String() string {
	switch k {
	case CMDisconnected:
		return "disconnected"
	case CMTimewaitExit:
		return "timewait-exit"
	case CMDeviceRemoval:
		return "device-removal"
	case CMAddrChange:
		return "address-change"
	}
	return "CMEventKind(" + itoa(int(k)) + ")"
}

// CMEvent is one connection-manager event.
type CMEvent struct {
	Kind CMEventKind
	Time time.Time
}

// AsyncEventKind is a device asynchronous event.
type AsyncEventKind uint8

// Asynchronous device events (ibv_event_type subset).
const (
	EventPortError AsyncEventKind = iota + 1
	EventPortActive
	EventLIDChange
	EventPKeyChange
	EventSMChange
	EventClientReregister
	EventGIDChange
	EventDeviceFatal
)

func (k AsyncEventKind) String() string {
	switch k {
	case EventPortError:
		return "port-error"
	case EventPortActive:
		return "port-active"
	case EventLIDChange:
		return "lid-change"
	case EventPKeyChange:
		return "pkey-change"
	case EventSMChange:
		return "sm-change"
	case EventClientReregister:
		return "client-reregister"
	case EventGIDChange:
		return "gid-change"
	case EventDeviceFatal:
		return "device-fatal"
	}
	return "AsyncEventKind(" + itoa(int(k)) + ")"
}

// AsyncEvent is one asynchronous device event.
type AsyncEvent struct {
	Kind   AsyncEventKind
	Device string
	Port   uint8
	Time   time.Time
}

// GID is a 128-bit global identifier (an IPv6-shaped address).
type GID [16]byte

// String formats the GID as eight colon-separated 16-bit groups, like sysfs.
func (g GID) String() string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, 39)
	for i := 0; i < 16; i += 2 {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hex[g[i]>>4], hex[g[i]&0xf], hex[g[i+1]>>4], hex[g[i+1]&0xf])
	}
	return string(b)
}

// Addr returns the GID as an IPv6 address (RoCE v2 GIDs map IPv4 as ::ffff:a.b.c.d).
func (g GID) Addr() netip.Addr { return netip.AddrFrom16(g) }

// InterfaceID is the low 64 bits of the GID (the port GUID on InfiniBand).
func (g GID) InterfaceID() uint64 {
	var v uint64
	for _, c := range g[8:] {
		v = v<<8 | uint64(c)
	}
	return v
}

// PortState is a port's logical state (ibv_port_state).
type PortState uint8

// Port states.
const (
	PortNop PortState = iota
	PortDown
	PortInit
	PortArmed
	PortActive
	PortActiveDefer
)

func (s PortState) String() string {
	switch s {
	case PortNop:
		return "nop"
	case PortDown:
		return "down"
	case PortInit:
		return "init"
	case PortArmed:
		return "armed"
	case PortActive:
		return "active"
	case PortActiveDefer:
		return "active-defer"
	}
	return "PortState(" + itoa(int(s)) + ")"
}

// LinkLayer tells InfiniBand from Ethernet (RoCE) ports.
type LinkLayer uint8

// Link layers.
const (
	LinkUnspecified LinkLayer = iota
	LinkInfiniBand
	LinkEthernet
)

func (l LinkLayer) String() string {
	switch l {
	case LinkInfiniBand:
		return "InfiniBand"
	case LinkEthernet:
		return "Ethernet"
	}
	return "unspecified"
}

// PortAttr are the attributes of one port.
type PortAttr struct {
	State         PortState
	LinkLayer     LinkLayer
	LID           uint16
	SMLID         uint16
	SMSL          uint8
	SubnetTimeout uint8
	GIDTableLen   int
	PKeyTableLen  int
	ActiveMTU     int // bytes
}

// MADAddr addresses a management datagram peer.
type MADAddr struct {
	LID   uint16
	QPN   uint32
	QKey  uint32
	SL    uint8
	PKey  uint16 // P_Key value; the port resolves it to an index per send
	GID   GID
	HasGR bool // a global route header is present
}

// MADPort sends and receives raw 256-byte MADs; the SA/DM codecs live above
// it in pure Go (internal/srp).
type MADPort interface {
	// Send sends one MAD and waits up to timeout for a matching response
	// (same transaction ID), which it returns. A response MAD (method with
	// the R bit 0x80 set, e.g. the ReportResp that acknowledges a trap
	// Report) expects no answer: Send returns (nil, nil) once it is sent.
	// The answer to an SA GetTable comes as the MAD layer reassembled it
	// from its RMPP segments, so it may be longer than 256 bytes.
	Send(ctx context.Context, mad []byte, to MADAddr, timeout time.Duration) ([]byte, error)
	// Recv receives one unsolicited MAD (a trap Report).
	Recv(ctx context.Context) (mad []byte, from MADAddr, err error)
	Close() error
}

func itoa(v int) string {
	if v == 0 {
		return "0"
	}
	neg := v < 0
	if neg {
		v = -v
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
