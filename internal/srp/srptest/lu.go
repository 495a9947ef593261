package srptest

import (
	"fmt"
	"sync"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/srp/scsi"
)

// Block sizes an LU accepts (the two that Linux block devices and SRP targets
// use in practice).
const (
	BlockSize512  = 512
	BlockSize4096 = 4096
)

// LUConfig describes a memory-backed logical unit.
type LUConfig struct {
	// LUN is the integer LUN (Linux style: LUN 1 is 00 01 00 .. on the wire).
	LUN uint64
	// BlockSize is the logical block size: BlockSize512 or BlockSize4096.
	BlockSize int
	// Blocks is the capacity in logical blocks.
	Blocks uint64
	// NAA is the VPD 0x83 NAA designator (8 or 16 bytes, first nibble is the
	// NAA type). Empty: derived from Serial.
	NAA []byte
	// Serial is the unit serial number (VPD 0x80) and the tail of the T10
	// vendor-id designator.
	Serial string
	// Vendor and Product go into standard INQUIRY data (8 and 16 chars,
	// space padded). Defaults: "LIO-ORG", "srptest".
	Vendor, Product string
	// WriteCache is the WCE bit of the caching mode page.
	WriteCache bool
	// ThinProvisioning announces UNMAP (VPD 0xB0/0xB2, READ CAPACITY(16) LBPME).
	ThinProvisioning bool
}

// CheckCondition is a CHECK CONDITION the LU returns instead of executing a
// command (fault injection).
type CheckCondition struct {
	Key, ASC, ASCQ byte
}

// Common injected conditions.
var (
	UnitAttentionReset = CheckCondition{Key: senseUnitAttention, ASC: 0x29, ASCQ: 0x00} // POWER ON, RESET, OR BUS DEVICE RESET OCCURRED
	NotReadyBecoming   = CheckCondition{Key: senseNotReady, ASC: 0x04, ASCQ: 0x01}      // LOGICAL UNIT IS IN PROCESS OF BECOMING READY
	MediumErrorRead    = CheckCondition{Key: senseMediumError, ASC: 0x11, ASCQ: 0x00}   // UNRECOVERED READ ERROR
)

// LUFaults are fault knobs of one LU; the zero value means none.
type LUFaults struct {
	// Delay holds every response for this long (on the target's clock).
	Delay time.Duration
	// DropResponses makes the next n commands hang in the target: executed
	// data movement is skipped, no SRP_RSP is sent, and only ABORT TASK or
	// LUN RESET removes them (like a stuck backend).
	DropResponses int
	// CheckConditions are returned, one per command, before any command
	// executes.
	CheckConditions []CheckCondition
	// IgnoreTaskMgmt leaves every ABORT TASK and LUN RESET for this LU
	// unanswered.
	IgnoreTaskMgmt bool
}

// LU is a memory-backed logical unit.
type LU struct {
	cfg LUConfig
	naa []byte

	mu     sync.Mutex
	data   []byte
	faults LUFaults
	stats  LUStats
}

// LUStats counts what an LU executed.
type LUStats struct {
	Commands, Reads, Writes, Syncs, Unmaps, WriteSames uint64
	Aborted, Resets                                    uint64
}

func newLU(cfg LUConfig) (*LU, error) {
	if cfg.BlockSize != BlockSize512 && cfg.BlockSize != BlockSize4096 {
		return nil, fmt.Errorf("%w: block size %d (want %d or %d)", ErrBadConfig, cfg.BlockSize, BlockSize512, BlockSize4096)
	}
	if cfg.Blocks == 0 {
		return nil, fmt.Errorf("%w: zero blocks", ErrBadConfig)
	}
	if len(cfg.NAA) != 0 && len(cfg.NAA) != 8 && len(cfg.NAA) != 16 {
		return nil, fmt.Errorf("%w: NAA designator of %d bytes (want 8 or 16)", ErrBadConfig, len(cfg.NAA))
	}
	if cfg.Serial == "" {
		cfg.Serial = fmt.Sprintf("srptest%08x", cfg.LUN)
	}
	if cfg.Vendor == "" {
		cfg.Vendor = "LIO-ORG"
	}
	if cfg.Product == "" {
		cfg.Product = "srptest"
	}
	lu := &LU{cfg: cfg, data: make([]byte, cfg.Blocks*uint64(cfg.BlockSize))}
	lu.naa = append([]byte(nil), cfg.NAA...)
	if len(lu.naa) == 0 {
		lu.naa = deriveNAA(cfg.Serial)
	}
	return lu, nil
}

// deriveNAA makes an NAA 6 (registered extended) designator from the serial,
// with the OUI of LIO (0x001405) like targetcli does.
func deriveNAA(serial string) []byte {
	const lioOUI uint32 = 0x001405
	var h uint64 = 14695981039346656037 // FNV-1a offset basis
	for i := 0; i < len(serial); i++ {
		h ^= uint64(serial[i])
		h *= 1099511628211
	}
	n := make([]byte, 16)
	oui := lioOUI
	n[0] = 0x60 | byte(oui>>20)
	n[1] = byte(oui >> 12)
	n[2] = byte(oui >> 4)
	n[3] = byte(oui<<4) | byte(h>>60)
	for i := 4; i < 16; i++ {
		n[i] = byte(h >> (8 * ((i - 4) % 8)))
	}
	return n
}

// WWID is the LU's identity as an initiator derives it from VPD page 0x83
// (scsi.DeviceID.WWID: multipath's form, e.g. "36001405...").
func (lu *LU) WWID() (string, error) {
	const pageLen = 255 // a one-byte allocation length covers the page
	var page [pageLen]byte
	cdb := [6]byte{opInquiry, 0x01, vpdDeviceID, 0, pageLen}
	r := lu.exec(cdb[:], nil, page[:], nil, DefaultMaxTransfer)
	id, err := scsi.ParseDeviceID(page[:min(r.inWant, len(page))])
	if err != nil {
		return "", err
	}
	return id.WWID()
}

// Config returns the LU's configuration (with defaults filled in).
func (lu *LU) Config() LUConfig { return lu.cfg }

// NAA returns the VPD 0x83 NAA designator.
func (lu *LU) NAA() []byte { return append([]byte(nil), lu.naa...) }

// ReadAt copies stored data at byte offset off into p (for verification).
func (lu *LU) ReadAt(p []byte, off int64) (int, error) {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	if off < 0 || off > int64(len(lu.data)) {
		return 0, fmt.Errorf("srptest: offset %d outside LU of %d bytes", off, len(lu.data))
	}
	return copy(p, lu.data[off:]), nil
}

// WriteAt stores p at byte offset off (to seed data).
func (lu *LU) WriteAt(p []byte, off int64) (int, error) {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(lu.data)) {
		return 0, fmt.Errorf("srptest: range %d+%d outside LU of %d bytes", off, len(p), len(lu.data))
	}
	return copy(lu.data[off:], p), nil
}

// SetFaults replaces the LU's fault knobs.
func (lu *LU) SetFaults(f LUFaults) {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	f.CheckConditions = append([]CheckCondition(nil), f.CheckConditions...)
	lu.faults = f
}

// InjectCheckCondition queues one CHECK CONDITION for the next command.
func (lu *LU) InjectCheckCondition(cc CheckCondition) {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	lu.faults.CheckConditions = append(lu.faults.CheckConditions, cc)
}

// SetWriteCache changes the WCE bit reported by MODE SENSE.
func (lu *LU) SetWriteCache(on bool) {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	lu.cfg.WriteCache = on
}

// Stats returns the LU's counters.
func (lu *LU) Stats() LUStats {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	return lu.stats
}

// admission is what the fault knobs decide for one incoming command.
type admission struct {
	delay time.Duration
	drop  bool
	cc    CheckCondition
	hasCC bool
}

func (lu *LU) admit() admission {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	lu.stats.Commands++
	a := admission{delay: lu.faults.Delay}
	if lu.faults.DropResponses > 0 {
		lu.faults.DropResponses--
		a.drop = true
	}
	if len(lu.faults.CheckConditions) > 0 {
		a.cc, a.hasCC = lu.faults.CheckConditions[0], true
		lu.faults.CheckConditions = lu.faults.CheckConditions[1:]
	}
	return a
}

func (lu *LU) ignoresTaskMgmt() bool {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	return lu.faults.IgnoreTaskMgmt
}

func (lu *LU) countAborted(n uint64) {
	lu.mu.Lock()
	lu.stats.Aborted += n
	lu.mu.Unlock()
}

func (lu *LU) countReset() {
	lu.mu.Lock()
	lu.stats.Resets++
	lu.mu.Unlock()
}
