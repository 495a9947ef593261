package scsi

import "strconv"

// Status is the SCSI status byte of a completed command (SAM-5 table 43),
// as carried in the status field of an SRP_RSP.
type Status byte

// The status codes a target may return. Obsolete codes (INTERMEDIATE,
// COMMAND TERMINATED) are not named; Classify treats them as documented there.
const (
	StatusGood                Status = 0x00
	StatusCheckCondition      Status = 0x02
	StatusConditionMet        Status = 0x04
	StatusBusy                Status = 0x08
	StatusReservationConflict Status = 0x18
	StatusTaskSetFull         Status = 0x28
	StatusACAActive           Status = 0x30
	StatusTaskAborted         Status = 0x40

	// statusCommandTerminated is obsolete since SAM-3; old targets used it
	// like CHECK CONDITION, and so do we (as the kernel's scsi_decide_disposition did).
	statusCommandTerminated Status = 0x22
)

func (s Status) String() string {
	switch s {
	case StatusGood:
		return "GOOD"
	case StatusCheckCondition:
		return "CHECK CONDITION"
	case StatusConditionMet:
		return "CONDITION MET"
	case StatusBusy:
		return "BUSY"
	case StatusReservationConflict:
		return "RESERVATION CONFLICT"
	case StatusTaskSetFull:
		return "TASK SET FULL"
	case StatusACAActive:
		return "ACA ACTIVE"
	case StatusTaskAborted:
		return "TASK ABORTED"
	}
	return "Status(0x" + hex2(byte(s)) + ")"
}

// SenseKey is the 4-bit sense key of sense data (SPC-4 table 48).
type SenseKey byte

// Sense keys.
const (
	KeyNoSense        SenseKey = 0x0
	KeyRecoveredError SenseKey = 0x1
	KeyNotReady       SenseKey = 0x2
	KeyMediumError    SenseKey = 0x3
	KeyHardwareError  SenseKey = 0x4
	KeyIllegalRequest SenseKey = 0x5
	KeyUnitAttention  SenseKey = 0x6
	KeyDataProtect    SenseKey = 0x7
	KeyBlankCheck     SenseKey = 0x8
	KeyVendorSpecific SenseKey = 0x9
	KeyCopyAborted    SenseKey = 0xA
	KeyAbortedCommand SenseKey = 0xB
	KeyVolumeOverflow SenseKey = 0xD
	KeyMiscompare     SenseKey = 0xE
	KeyCompleted      SenseKey = 0xF
)

func (k SenseKey) String() string {
	switch k {
	case KeyNoSense:
		return "NO SENSE"
	case KeyRecoveredError:
		return "RECOVERED ERROR"
	case KeyNotReady:
		return "NOT READY"
	case KeyMediumError:
		return "MEDIUM ERROR"
	case KeyHardwareError:
		return "HARDWARE ERROR"
	case KeyIllegalRequest:
		return "ILLEGAL REQUEST"
	case KeyUnitAttention:
		return "UNIT ATTENTION"
	case KeyDataProtect:
		return "DATA PROTECT"
	case KeyBlankCheck:
		return "BLANK CHECK"
	case KeyVendorSpecific:
		return "VENDOR SPECIFIC"
	case KeyCopyAborted:
		return "COPY ABORTED"
	case KeyAbortedCommand:
		return "ABORTED COMMAND"
	case KeyVolumeOverflow:
		return "VOLUME OVERFLOW"
	case KeyMiscompare:
		return "MISCOMPARE"
	case KeyCompleted:
		return "COMPLETED"
	}
	return "SenseKey(0x" + hex2(byte(k)) + ")"
}

func hex2(b byte) string {
	s := strconv.FormatUint(uint64(b), 16)
	if len(s) == 1 {
		return "0" + s
	}
	return s
}
