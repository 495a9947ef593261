package srptest

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/srp"
)

// Defaults of Config (ib_srpt's module parameter defaults).
const (
	// DefaultMaxReqSize is srp_max_req_size in current ib_srpt.h:
	// max(48+16+20+128·16, 80+4+8192).
	DefaultMaxReqSize = 8276
	// OldMaxReqSize is the srp_max_req_size of older ib_srpt (48+20+255·16),
	// against which an initiator asking for immediate data gets 0x10002.
	OldMaxReqSize = 4148
	// DefaultRQSize is MAX_SRPT_RQ_SIZE: the credits a login grants.
	DefaultRQSize = 128
	// DefaultMaxTransfer is the staging buffer per task (the largest data
	// transfer of one command).
	DefaultMaxTransfer = 128 << 10
	// minITIULen is the smallest req_it_iu_len ib_srpt accepts.
	minITIULen = 64
	// minImmDataOffset: ib_srpt grants immediate data only if the offset
	// leaves room for the SRP_CMD header.
	minImmDataOffset = srp.CmdLen
)

// Config configures a Target.
type Config struct {
	// ServiceGUID is srpt_service_guid: both halves of the target port id
	// must equal it. Default: the node GUID of the first port's device.
	ServiceGUID uint64
	// MaxReqSize is srp_max_req_size (the largest IU accepted).
	MaxReqSize int
	// RQSize is the credit window granted at login.
	RQSize int
	// UseSRQ models ib_srpt's use_srq: immediate data is then refused.
	UseSRQ bool
	// MaxTransfer is the largest data transfer of one command.
	MaxTransfer int
	// ACL lists the initiator port ids allowed to log in; nil allows every
	// initiator (ib_srpt itself needs ACLs; tests rarely care).
	ACL []srp.InitiatorPortID
	// Clock drives response delays; default clock.Real.
	Clock  clock.Clock
	Logger *slog.Logger
}

// Target is a software SRP target with the login, credit and SCSI behaviour
// of LIO's ib_srpt, serving memory-backed LUs on simulated ports.
//
// Concurrency: every method is safe for concurrent use. Each port has an
// accept goroutine and each session one goroutine that owns its connection;
// Close stops and waits for all of them.
type Target struct {
	cfg Config
	log *slog.Logger

	mu       sync.RWMutex
	lus      map[uint64]*LU
	lunOrder []uint64
	ports    []*Port
	sessions []*Session
	acl      []srp.InitiatorPortID
	nextID   uint64
	closed   bool
	wg       sync.WaitGroup
}

// New returns a target with no ports and no LUs.
func New(cfg Config) *Target {
	if cfg.MaxReqSize == 0 {
		cfg.MaxReqSize = DefaultMaxReqSize
	}
	if cfg.RQSize == 0 {
		cfg.RQSize = DefaultRQSize
	}
	if cfg.MaxTransfer == 0 {
		cfg.MaxTransfer = DefaultMaxTransfer
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Target{cfg: cfg, log: cfg.Logger, lus: make(map[uint64]*LU), acl: slices.Clone(cfg.ACL)}
}

// ServiceGUID is the GUID the target port id must carry twice.
func (t *Target) ServiceGUID() uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.cfg.ServiceGUID
}

// PortID is the target port id initiators must log in with.
func (t *Target) PortID() srp.TargetPortID {
	g := t.ServiceGUID()
	return srp.TargetPortID{IDExt: g, IOCGUID: g}
}

// AddLU adds a memory-backed LU.
func (t *Target) AddLU(cfg LUConfig) (*LU, error) {
	lu, err := newLU(cfg)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.lus[cfg.LUN]; ok {
		return nil, fmt.Errorf("%w: LUN %d exists", ErrBadConfig, cfg.LUN)
	}
	t.lus[cfg.LUN] = lu
	t.lunOrder = append(t.lunOrder, cfg.LUN)
	slices.Sort(t.lunOrder)
	return lu, nil
}

// RemoveLU removes an LU; commands to it then get LOGICAL UNIT NOT
// SUPPORTED.
func (t *Target) RemoveLU(lun uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.lus, lun)
	t.lunOrder = slices.DeleteFunc(t.lunOrder, func(l uint64) bool { return l == lun })
}

// LU returns the LU with the given LUN, or nil.
func (t *Target) LU(lun uint64) *LU { return t.lookupLU(lun) }

func (t *Target) lookupLU(lun uint64) *LU {
	t.mu.RLock()
	lu := t.lus[lun]
	t.mu.RUnlock()
	return lu
}

// lunList appends the LUNs in ascending order to dst (no allocation when
// dst has the capacity).
func (t *Target) lunList(dst []uint64) []uint64 {
	t.mu.RLock()
	dst = append(dst, t.lunOrder...)
	t.mu.RUnlock()
	return dst
}

// SetACL replaces the list of initiator port ids allowed to log in (nil:
// everyone).
func (t *Target) SetACL(acl []srp.InitiatorPortID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.acl = slices.Clone(acl)
}

func (t *Target) allowed(id srp.InitiatorPortID) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.acl == nil || slices.Contains(t.acl, id)
}

// Ports lists the target's ports.
func (t *Target) Ports() []*Port {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return slices.Clone(t.ports)
}

// Sessions lists the live sessions of every port.
func (t *Target) Sessions() []*Session {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return slices.Clone(t.sessions)
}

// KillSessions disconnects every session (DREQ) and returns how many.
func (t *Target) KillSessions() int {
	n := 0
	for _, s := range t.Sessions() {
		s.Kill()
		n++
	}
	return n
}

func (t *Target) addSession(s *Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nextID++
	s.info.ID = t.nextID
	t.sessions = append(t.sessions, s)
}

func (t *Target) removeSession(s *Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sessions = slices.DeleteFunc(t.sessions, func(x *Session) bool { return x == s })
}

// Close closes every port, kills every session and waits for the target's
// goroutines.
func (t *Target) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	ports := slices.Clone(t.ports)
	sessions := slices.Clone(t.sessions)
	t.mu.Unlock()
	var errs []error
	for _, p := range ports {
		errs = append(errs, p.close())
	}
	for _, s := range sessions {
		s.stop(true)
	}
	t.wg.Wait()
	return errors.Join(errs...)
}
