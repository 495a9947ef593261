package scsi

// Action is what the multipath layer should do with a completed command.
type Action uint8

// Actions, from best to worst.
const (
	// ActionOK: the command succeeded (possibly after target-internal recovery).
	ActionOK Action = iota
	// ActionRetrySamePath: a transient condition of the LU or its queue on
	// this path (UNIT ATTENTION, BUSY, becoming ready); reissue on the same
	// path, after a pause when Decision.Backoff is set.
	ActionRetrySamePath
	// ActionRetryOtherPath: a path error in the sense of the kernel's
	// blk_path_error(): another path may succeed. The caller reissues on
	// another path (and counts it against this path's health).
	ActionRetryOtherPath
	// ActionFail: the target answered definitively (medium, hardware, bad
	// request, data protect, reservation conflict); no path will do better.
	// The I/O fails with Decision.Class.
	ActionFail
)

func (a Action) String() string {
	switch a {
	case ActionOK:
		return "ok"
	case ActionRetrySamePath:
		return "retry-same-path"
	case ActionRetryOtherPath:
		return "retry-other-path"
	case ActionFail:
		return "fail"
	}
	return "Action(" + hex2(byte(a)) + ")"
}

// ErrorClass is the kind of failure, mirroring the kernel's blk_status_t
// values that scsi_result_to_blk_status() produces. The one function that
// turns a failed I/O into an errno (in the ublk edge) switches on it.
type ErrorClass uint8

// Error classes and the blk_status_t / errno they correspond to.
const (
	ClassNone        ErrorClass = iota // BLK_STS_OK
	ClassIO                            // BLK_STS_IOERR, EIO: unclassified; a path error
	ClassTransport                     // BLK_STS_TRANSPORT, ENOLINK: path/transport failure
	ClassTarget                        // BLK_STS_TARGET, EREMOTEIO: the target refused; not a path error
	ClassMedium                        // BLK_STS_MEDIUM, ENODATA: unreadable medium; not a path error
	ClassProtection                    // BLK_STS_PROTECTION, EILSEQ: PI check failed; not a path error
	ClassNoSpace                       // BLK_STS_NOSPC, ENOSPC: thin pool exhausted; not a path error
	ClassReservation                   // BLK_STS_RESV_CONFLICT, EBADE: not a path error
	ClassBusy                          // BLK_STS_RESOURCE-like: busy/queue full, retried in place
)

func (c ErrorClass) String() string {
	switch c {
	case ClassNone:
		return "none"
	case ClassIO:
		return "io"
	case ClassTransport:
		return "transport"
	case ClassTarget:
		return "target"
	case ClassMedium:
		return "medium"
	case ClassProtection:
		return "protection"
	case ClassNoSpace:
		return "no-space"
	case ClassReservation:
		return "reservation"
	case ClassBusy:
		return "busy"
	}
	return "ErrorClass(" + hex2(byte(c)) + ")"
}

// Notice flags an event a UNIT ATTENTION (or deferred sense) reports, which
// the control plane should act on besides retrying: re-read capacity,
// rescan LUNs, re-check ALUA state, log a deferred error.
type Notice uint8

// Notices.
const (
	NoticeNone             Notice = iota
	NoticeReset                   // 29/xx: power on, reset, I_T nexus loss
	NoticeMediumChanged           // 28/00
	NoticeModeChanged             // 2A/01: e.g. WCE toggled, re-read the caching page
	NoticeReservations            // 2A/03..05: reservations/registrations changed
	NoticeALUAChanged             // 2A/06: asymmetric access state changed
	NoticeCapacityChanged         // 2A/09: re-read READ CAPACITY(16)
	NoticeCommandsCleared         // 2F/00: another initiator cleared our commands
	NoticeThinThreshold           // 38/07: thin provisioning soft threshold reached
	NoticeInquiryChanged          // 3F/03: re-read INQUIRY/VPD (identity may change)
	NoticeLUNsChanged             // 3F/0E: rescan REPORT LUNS
	NoticeMicrocodeChanged        // 3F/01
	NoticeDeferredError           // response code 0x71/0x73: an EARLIER command failed
)

func (n Notice) String() string {
	switch n {
	case NoticeNone:
		return "none"
	case NoticeReset:
		return "reset"
	case NoticeMediumChanged:
		return "medium-changed"
	case NoticeModeChanged:
		return "mode-parameters-changed"
	case NoticeReservations:
		return "reservations-changed"
	case NoticeALUAChanged:
		return "alua-state-changed"
	case NoticeCapacityChanged:
		return "capacity-changed"
	case NoticeCommandsCleared:
		return "commands-cleared"
	case NoticeThinThreshold:
		return "thin-threshold"
	case NoticeInquiryChanged:
		return "inquiry-changed"
	case NoticeLUNsChanged:
		return "luns-changed"
	case NoticeMicrocodeChanged:
		return "microcode-changed"
	case NoticeDeferredError:
		return "deferred-error"
	}
	return "Notice(" + hex2(byte(n)) + ")"
}

// Decision is Classify's verdict. It is a plain value; Reason is a constant
// string, so classifying never allocates.
type Decision struct {
	Action Action
	// Class is the failure kind should the I/O end here (a failure, or a
	// retry the caller gives up on); ClassNone exactly when Action is OK.
	Class  ErrorClass
	Notice Notice
	// Backoff asks the caller to pause before a retry (the kernel's
	// ACTION_DELAYED_RETRY / ADD_TO_MLQUEUE cases) instead of spinning.
	Backoff bool
	Reason  string

	// The sense fields the decision rests on; SenseValid is false when
	// there was no (usable) sense data.
	SenseValid bool
	Key        SenseKey
	ASC, ASCQ  byte
}

func (d Decision) String() string {
	s := d.Action.String() + ": " + d.Reason
	if d.SenseValid {
		s += " [" + d.Key.String() + " 0x" + hex2(d.ASC) + "/0x" + hex2(d.ASCQ) + "]"
	}
	if d.Notice != NoticeNone {
		s += " notice=" + d.Notice.String()
	}
	return s
}

// Classify maps a SCSI status and its sense data (may be nil) to one
// decision. It never allocates and never panics, whatever the bytes.
//
// The rules mirror what Linux does for a SCSI disk under dm-multipath, so an
// admin sees the same behaviour as with ib_srp + dm-multipath:
//
//   - The midlayer's scsi_decide_disposition() / scsi_check_sense()
//     (drivers/scsi/scsi_error.c) and scsi_io_completion_action()
//     (drivers/scsi/scsi_lib.c) decide retry-in-place versus complete, and
//     scsi_result_to_blk_status() turns the result into a blk_status_t.
//   - dm-multipath then calls blk_path_error() (include/linux/blk_types.h):
//     BLK_STS_NOTSUPP, NOSPC, TARGET, RESV_CONFLICT (formerly NEXUS), MEDIUM
//     and PROTECTION are "retrying failover path will not help"; every other
//     status fails the path and the I/O is requeued on another one.
//
// Status byte:
//   - GOOD, CONDITION MET: OK.
//   - BUSY, TASK SET FULL: retry on the same path with backoff
//     (scsi_decide_disposition: ADD_TO_MLQUEUE / NEEDS_RETRY); the path is
//     fine, the LU's queue is not.
//   - RESERVATION CONFLICT: fail, ClassReservation ("causes immediate i/o
//     error"; BLK_STS_RESV_CONFLICT is not a path error).
//   - TASK ABORTED (another nexus aborted it, TAS=1), ACA ACTIVE (another
//     nexus holds an ACA; we never set NACA): retry on the same path with
//     backoff. The kernel sends these to the error handler; nothing about
//     them implicates our path.
//   - CHECK CONDITION (and obsolete COMMAND TERMINATED): by sense, below.
//   - anything else: a protocol error on this path (research DESIGN
//     "Errors"): retry on another path.
//
// CHECK CONDITION, by sense key:
//   - no sense, or sense we cannot decode: retry on another path (the
//     midlayer returns FAILED for "no valid sense data", escalating to error
//     handling; a target sending garbage is a path protocol error).
//   - deferred sense (0x71/0x73): retry on the same path (scsi_check_sense:
//     NEEDS_RETRY) with NoticeDeferredError, since an earlier write failed.
//   - NO SENSE: retry on the same path; sd_done calls it a false check
//     condition with an unknown amount transferred.
//   - RECOVERED ERROR: OK (a soft error; sd counts all bytes good).
//   - NOT READY 04/01,04,05,06,07,08,09,11,14,1A,1B,1D ("becoming ready",
//     an operation in progress): retry on the same path with backoff
//     (scsi_io_completion_action: ACTION_DELAYED_RETRY).
//   - NOT READY 04/0A (ALUA transition), 04/0B (port in standby), 04/0C
//     (port unavailable): retry on another path. The kernel completed 04/0A
//     as BLK_STS_TRANSPORT (a path error) before it learned to requeue it in
//     place (ACTION_DELAYED_REPREP); scsi_dh_alua fails I/O to
//     standby/unavailable ports with a path error. With our own selector an
//     active/optimized port group is the better place; with a single path the
//     caller retries here after backoff anyway.
//   - other NOT READY: retry on another path (ACTION_FAIL with
//     BLK_STS_IOERR, which blk_path_error counts as a path error).
//   - UNIT ATTENTION: retry on the same path (the command was not executed;
//     scsi_io_completion_action: ACTION_RETRY for fixed media), with the
//     Notice the ASC/ASCQ names.
//   - MEDIUM ERROR: fail, ClassMedium (scsi_check_sense: DID_MEDIUM_ERROR for
//     11/13/14 → BLK_STS_MEDIUM; the target owns the medium on every path).
//   - HARDWARE ERROR: fail, ClassTarget (DID_TARGET_FAILURE).
//   - ILLEGAL REQUEST: fail, ClassTarget (DID_TARGET_FAILURE for 20/21/22/
//     24/26/27) or ClassProtection for 10/xx (DIX). Exception: 25/00 LOGICAL
//     UNIT NOT SUPPORTED retries on another path: LIO maps LUNs per target
//     port ACL, and the kernel, which does not list 0x25, reports
//     BLK_STS_IOERR, a path error.
//   - DATA PROTECT: fail, ClassTarget, or ClassNoSpace for 27/07 (thin pool
//     hard threshold; DID_ALLOC_FAILURE → BLK_STS_NOSPC).
//   - BLANK CHECK, COPY ABORTED, VOLUME OVERFLOW, MISCOMPARE: fail,
//     ClassTarget (DID_TARGET_FAILURE).
//   - ABORTED COMMAND: retry on another path (the target aborted it for a
//     transport-side reason; the midlayer retries it, then completes
//     BLK_STS_IOERR, a path error), except 10/xx (DIF check failed): fail,
//     ClassProtection.
//   - VENDOR SPECIFIC, COMPLETED and reserved keys: retry on another path
//     (the midlayer passes them up as BLK_STS_IOERR, a path error).
func Classify(status Status, sense []byte) Decision {
	switch status {
	case StatusGood, StatusConditionMet:
		return Decision{Action: ActionOK, Reason: "good status"}
	case StatusBusy:
		return Decision{Action: ActionRetrySamePath, Class: ClassBusy, Backoff: true, Reason: "target busy"}
	case StatusTaskSetFull:
		return Decision{Action: ActionRetrySamePath, Class: ClassBusy, Backoff: true, Reason: "task set full (queue full)"}
	case StatusReservationConflict:
		return Decision{Action: ActionFail, Class: ClassReservation, Reason: "reservation conflict"}
	case StatusTaskAborted:
		return Decision{Action: ActionRetrySamePath, Class: ClassBusy, Backoff: true, Reason: "task aborted by another nexus"}
	case StatusACAActive:
		return Decision{Action: ActionRetrySamePath, Class: ClassBusy, Backoff: true, Reason: "ACA active on another nexus"}
	case StatusCheckCondition, statusCommandTerminated:
		return classifySense(sense)
	}
	return Decision{Action: ActionRetryOtherPath, Class: ClassTransport, Reason: "unknown SCSI status: protocol error on this path"}
}

// senseHeader extracts what classification needs, like the kernel's
// scsi_normalize_sense: only the header, so a damaged descriptor list does
// not hide a valid sense key.
func senseHeader(b []byte) (rc byte, key SenseKey, asc, ascq byte, ok bool) {
	if len(b) == 0 {
		return 0, 0, 0, 0, false
	}
	rc = b[0] & responseCodeMask
	switch rc {
	case SenseFixedCurrent, SenseFixedDeferred:
		if len(b) <= fixedKeyOff {
			return 0, 0, 0, 0, false
		}
		key = SenseKey(b[fixedKeyOff] & senseKeyMask)
		if len(b) >= senseHeaderLen {
			b = b[:min(len(b), senseHeaderLen+int(b[fixedAddlOff]))]
		}
		if len(b) > fixedASCOff {
			asc = b[fixedASCOff]
		}
		if len(b) > fixedASCQOff {
			ascq = b[fixedASCQOff]
		}
		return rc, key, asc, ascq, true
	case SenseDescriptorCurrent, SenseDescriptorDeferred:
		if len(b) < descMinLen {
			return 0, 0, 0, 0, false
		}
		return rc, SenseKey(b[descKeyOff] & senseKeyMask), b[descASCOff], b[descASCQOff], true
	}
	return 0, 0, 0, 0, false
}

func classifySense(sense []byte) Decision {
	rc, key, asc, ascq, ok := senseHeader(sense)
	if !ok {
		return Decision{Action: ActionRetryOtherPath, Class: ClassTransport,
			Reason: "check condition without valid sense data"}
	}
	d := decideSense(key, asc, ascq)
	d.SenseValid, d.Key, d.ASC, d.ASCQ = true, key, asc, ascq
	if rc == SenseFixedDeferred || rc == SenseDescriptorDeferred {
		// The sense is about an earlier command; this one did not run.
		d.Action, d.Class, d.Backoff = ActionRetrySamePath, ClassIO, false
		d.Notice = NoticeDeferredError
		d.Reason = "deferred error reported for an earlier command"
	}
	return d
}

// ASC values the classification tests.
const (
	ascNotReady        = 0x04
	ascProtection      = 0x10
	ascLUNNotSupported = 0x25
	ascWriteProtected  = 0x27
	ascMediumChanged   = 0x28
	ascReset           = 0x29
	ascParamsChanged   = 0x2A
	ascCommandsCleared = 0x2F
	ascThinThreshold   = 0x38
	ascTargetChanged   = 0x3F

	ascqALUATransition    = 0x0A
	ascqALUAStandby       = 0x0B
	ascqALUAUnavailable   = 0x0C
	ascqSpaceAllocFailed  = 0x07 // with ascWriteProtected
	ascqModeChanged       = 0x01
	ascqReservPreempted   = 0x03
	ascqReservReleased    = 0x04
	ascqRegistrPreempted  = 0x05
	ascqALUAChanged       = 0x06
	ascqCapacityChanged   = 0x09
	ascqMicrocodeChanged  = 0x01
	ascqInquiryChanged    = 0x03
	ascqLUNsChanged       = 0x0E
	ascqThinSoftThreshold = 0x07
)

func decideSense(key SenseKey, asc, ascq byte) Decision {
	switch key {
	case KeyNoSense:
		return Decision{Action: ActionRetrySamePath, Class: ClassIO,
			Reason: "check condition with NO SENSE: unknown amount transferred"}
	case KeyRecoveredError:
		return Decision{Action: ActionOK, Reason: "recovered error"}
	case KeyNotReady:
		return decideNotReady(asc, ascq)
	case KeyUnitAttention:
		return Decision{Action: ActionRetrySamePath, Class: ClassIO, Notice: unitAttentionNotice(asc, ascq),
			Reason: "unit attention: command not executed"}
	case KeyMediumError:
		return Decision{Action: ActionFail, Class: ClassMedium, Reason: "medium error"}
	case KeyHardwareError:
		return Decision{Action: ActionFail, Class: ClassTarget, Reason: "target hardware error"}
	case KeyIllegalRequest:
		switch asc {
		case ascProtection:
			return Decision{Action: ActionFail, Class: ClassProtection, Reason: "protection information check failed (DIX)"}
		case ascLUNNotSupported:
			return Decision{Action: ActionRetryOtherPath, Class: ClassIO,
				Reason: "logical unit not supported on this target port"}
		}
		return Decision{Action: ActionFail, Class: ClassTarget, Reason: "illegal request"}
	case KeyDataProtect:
		if asc == ascWriteProtected && ascq == ascqSpaceAllocFailed {
			return Decision{Action: ActionFail, Class: ClassNoSpace, Reason: "thin provisioning space allocation failed"}
		}
		return Decision{Action: ActionFail, Class: ClassTarget, Reason: "data protect"}
	case KeyBlankCheck, KeyCopyAborted, KeyVolumeOverflow, KeyMiscompare:
		return Decision{Action: ActionFail, Class: ClassTarget, Reason: "target failure"}
	case KeyAbortedCommand:
		if asc == ascProtection {
			return Decision{Action: ActionFail, Class: ClassProtection, Reason: "protection information check failed (DIF)"}
		}
		return Decision{Action: ActionRetryOtherPath, Class: ClassTransport, Reason: "command aborted by target"}
	}
	return Decision{Action: ActionRetryOtherPath, Class: ClassIO, Reason: "unclassified sense key"}
}

func decideNotReady(asc, ascq byte) Decision {
	if asc == ascNotReady {
		switch ascq {
		case 0x01, // becoming ready
			0x04, // format in progress
			0x05, // rebuild in progress
			0x06, // recalculation in progress
			0x07, // operation in progress
			0x08, // long write in progress
			0x09, // self-test in progress
			0x11, // notify (enable spinup) required
			0x14, // space allocation in progress
			0x1A, // start stop unit in progress
			0x1B, // sanitize in progress
			0x1D: // configuration in progress
			return Decision{Action: ActionRetrySamePath, Class: ClassBusy, Backoff: true,
				Reason: "logical unit becoming ready"}
		case ascqALUATransition:
			return Decision{Action: ActionRetryOtherPath, Class: ClassTransport, Backoff: true,
				Reason: "asymmetric access state transition on this port"}
		case ascqALUAStandby:
			return Decision{Action: ActionRetryOtherPath, Class: ClassTransport,
				Reason: "target port in standby state"}
		case ascqALUAUnavailable:
			return Decision{Action: ActionRetryOtherPath, Class: ClassTransport,
				Reason: "target port in unavailable state"}
		}
	}
	return Decision{Action: ActionRetryOtherPath, Class: ClassIO, Reason: "logical unit not ready"}
}

func unitAttentionNotice(asc, ascq byte) Notice {
	switch asc {
	case ascReset:
		return NoticeReset
	case ascMediumChanged:
		return NoticeMediumChanged
	case ascParamsChanged:
		switch ascq {
		case ascqModeChanged:
			return NoticeModeChanged
		case ascqReservPreempted, ascqReservReleased, ascqRegistrPreempted:
			return NoticeReservations
		case ascqALUAChanged:
			return NoticeALUAChanged
		case ascqCapacityChanged:
			return NoticeCapacityChanged
		}
	case ascCommandsCleared:
		return NoticeCommandsCleared
	case ascThinThreshold:
		if ascq == ascqThinSoftThreshold {
			return NoticeThinThreshold
		}
	case ascTargetChanged:
		switch ascq {
		case ascqMicrocodeChanged:
			return NoticeMicrocodeChanged
		case ascqInquiryChanged:
			return NoticeInquiryChanged
		case ascqLUNsChanged:
			return NoticeLUNsChanged
		}
	}
	return NoticeNone
}
