package scsi

import "testing"

func fixedSense(key SenseKey, asc, ascq byte) []byte {
	s := Sense{ResponseCode: SenseFixedCurrent, Key: key, ASC: asc, ASCQ: ascq}
	return s.Append(nil)
}

func descSense(key SenseKey, asc, ascq byte) []byte {
	s := Sense{ResponseCode: SenseDescriptorCurrent, Key: key, ASC: asc, ASCQ: ascq}
	return s.Append(nil)
}

func TestClassify(t *testing.T) {
	const (
		ok    = ActionOK
		same  = ActionRetrySamePath
		other = ActionRetryOtherPath
		fail  = ActionFail
	)
	cc := StatusCheckCondition
	cases := []struct {
		name    string
		status  Status
		sense   []byte
		action  Action
		class   ErrorClass
		notice  Notice
		backoff bool
	}{
		{"good", StatusGood, nil, ok, ClassNone, NoticeNone, false},
		{"condition met", StatusConditionMet, nil, ok, ClassNone, NoticeNone, false},
		{"good ignores sense", StatusGood, fixedSense(KeyMediumError, 0x11, 0), ok, ClassNone, NoticeNone, false},
		{"busy", StatusBusy, nil, same, ClassBusy, NoticeNone, true},
		{"task set full", StatusTaskSetFull, nil, same, ClassBusy, NoticeNone, true},
		{"reservation conflict", StatusReservationConflict, nil, fail, ClassReservation, NoticeNone, false},
		{"task aborted", StatusTaskAborted, nil, same, ClassBusy, NoticeNone, true},
		{"aca active", StatusACAActive, nil, same, ClassBusy, NoticeNone, true},
		{"unknown status", Status(0x3E), nil, other, ClassTransport, NoticeNone, false},
		{"check condition, no sense data", cc, nil, other, ClassTransport, NoticeNone, false},
		{"check condition, garbage sense", cc, []byte{0x12, 0x34, 0x56}, other, ClassTransport, NoticeNone, false},
		{"command terminated like check condition", Status(0x22), fixedSense(KeyMediumError, 0x11, 0), fail, ClassMedium, NoticeNone, false},

		{"NO SENSE", cc, fixedSense(KeyNoSense, 0, 0), same, ClassIO, NoticeNone, false},
		{"RECOVERED ERROR", cc, fixedSense(KeyRecoveredError, 0x17, 0x01), ok, ClassNone, NoticeNone, false},

		{"becoming ready", cc, fixedSense(KeyNotReady, 0x04, 0x01), same, ClassBusy, NoticeNone, true},
		{"format in progress", cc, fixedSense(KeyNotReady, 0x04, 0x04), same, ClassBusy, NoticeNone, true},
		{"space allocation in progress", cc, descSense(KeyNotReady, 0x04, 0x14), same, ClassBusy, NoticeNone, true},
		{"ALUA transition", cc, golden(t, "sense_desc_alua.hex"), other, ClassTransport, NoticeNone, true},
		{"ALUA standby", cc, fixedSense(KeyNotReady, 0x04, 0x0B), other, ClassTransport, NoticeNone, false},
		{"ALUA unavailable", cc, fixedSense(KeyNotReady, 0x04, 0x0C), other, ClassTransport, NoticeNone, false},
		{"not ready, manual intervention", cc, fixedSense(KeyNotReady, 0x04, 0x03), other, ClassIO, NoticeNone, false},
		{"medium not present", cc, fixedSense(KeyNotReady, 0x3A, 0x00), other, ClassIO, NoticeNone, false},

		{"UA reset", cc, golden(t, "sense_fixed_ua_reset.hex"), same, ClassIO, NoticeReset, false},
		{"UA I_T nexus loss", cc, fixedSense(KeyUnitAttention, 0x29, 0x07), same, ClassIO, NoticeReset, false},
		{"UA mode parameters changed", cc, fixedSense(KeyUnitAttention, 0x2A, 0x01), same, ClassIO, NoticeModeChanged, false},
		{"UA reservations preempted", cc, fixedSense(KeyUnitAttention, 0x2A, 0x03), same, ClassIO, NoticeReservations, false},
		{"UA ALUA state changed", cc, fixedSense(KeyUnitAttention, 0x2A, 0x06), same, ClassIO, NoticeALUAChanged, false},
		{"UA capacity changed", cc, descSense(KeyUnitAttention, 0x2A, 0x09), same, ClassIO, NoticeCapacityChanged, false},
		{"UA commands cleared", cc, fixedSense(KeyUnitAttention, 0x2F, 0x00), same, ClassIO, NoticeCommandsCleared, false},
		{"UA thin threshold", cc, fixedSense(KeyUnitAttention, 0x38, 0x07), same, ClassIO, NoticeThinThreshold, false},
		{"UA inquiry changed", cc, fixedSense(KeyUnitAttention, 0x3F, 0x03), same, ClassIO, NoticeInquiryChanged, false},
		{"UA LUNs changed", cc, fixedSense(KeyUnitAttention, 0x3F, 0x0E), same, ClassIO, NoticeLUNsChanged, false},
		{"UA medium changed", cc, fixedSense(KeyUnitAttention, 0x28, 0x00), same, ClassIO, NoticeMediumChanged, false},
		{"UA other", cc, fixedSense(KeyUnitAttention, 0x3F, 0x7F), same, ClassIO, NoticeNone, false},

		{"MEDIUM ERROR read", cc, golden(t, "sense_fixed_medium.hex"), fail, ClassMedium, NoticeNone, false},
		{"MEDIUM ERROR write", cc, fixedSense(KeyMediumError, 0x0C, 0x00), fail, ClassMedium, NoticeNone, false},
		{"HARDWARE ERROR", cc, fixedSense(KeyHardwareError, 0x44, 0x00), fail, ClassTarget, NoticeNone, false},
		{"ILLEGAL REQUEST invalid field", cc, golden(t, "sense_fixed_illegal.hex"), fail, ClassTarget, NoticeNone, false},
		{"ILLEGAL REQUEST LBA out of range", cc, fixedSense(KeyIllegalRequest, 0x21, 0x00), fail, ClassTarget, NoticeNone, false},
		{"ILLEGAL REQUEST DIX", cc, fixedSense(KeyIllegalRequest, 0x10, 0x01), fail, ClassProtection, NoticeNone, false},
		{"ILLEGAL REQUEST LU not supported on this port", cc, fixedSense(KeyIllegalRequest, 0x25, 0x00), other, ClassIO, NoticeNone, false},
		{"DATA PROTECT write protected", cc, fixedSense(KeyDataProtect, 0x27, 0x00), fail, ClassTarget, NoticeNone, false},
		{"DATA PROTECT space allocation failed", cc, fixedSense(KeyDataProtect, 0x27, 0x07), fail, ClassNoSpace, NoticeNone, false},
		{"BLANK CHECK", cc, fixedSense(KeyBlankCheck, 0, 0), fail, ClassTarget, NoticeNone, false},
		{"COPY ABORTED", cc, fixedSense(KeyCopyAborted, 0, 0), fail, ClassTarget, NoticeNone, false},
		{"VOLUME OVERFLOW", cc, fixedSense(KeyVolumeOverflow, 0, 0), fail, ClassTarget, NoticeNone, false},
		{"MISCOMPARE", cc, fixedSense(KeyMiscompare, 0x1D, 0), fail, ClassTarget, NoticeNone, false},
		{"ABORTED COMMAND", cc, golden(t, "sense_desc_full.hex"), other, ClassTransport, NoticeNone, false},
		{"ABORTED COMMAND DIF", cc, fixedSense(KeyAbortedCommand, 0x10, 0x01), fail, ClassProtection, NoticeNone, false},
		{"VENDOR SPECIFIC", cc, fixedSense(KeyVendorSpecific, 0x80, 0), other, ClassIO, NoticeNone, false},
		{"reserved key 0xC", cc, fixedSense(SenseKey(0xC), 0, 0), other, ClassIO, NoticeNone, false},

		{"deferred medium error", cc, golden(t, "sense_fixed_deferred.hex"), same, ClassIO, NoticeDeferredError, false},
		{"deferred descriptor", cc, []byte{0x73, 0x03, 0x0C, 0x00}, same, ClassIO, NoticeDeferredError, false},
		// A broken descriptor list does not hide the key (scsi_normalize_sense
		// reads only the header).
		{"key readable despite corrupt descriptors", cc,
			[]byte{0x72, 3, 0x11, 0, 0, 0, 0, 4, 0, 0x0a, 0x80, 0}, fail, ClassMedium, NoticeNone, false},
		{"short fixed sense", cc, golden(t, "sense_fixed_short.hex"), other, ClassIO, NoticeNone, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Classify(tc.status, tc.sense)
			if d.Action != tc.action || d.Class != tc.class || d.Notice != tc.notice || d.Backoff != tc.backoff {
				t.Errorf("Classify(%v, % x) = %+v\nwant action %v class %v notice %v backoff %v",
					tc.status, tc.sense, d, tc.action, tc.class, tc.notice, tc.backoff)
			}
			if d.Reason == "" {
				t.Error("empty reason")
			}
			if (d.Action == ActionOK) != (d.Class == ClassNone) {
				t.Errorf("ClassNone must go with OK and only with OK: %+v", d)
			}
		})
	}
}

func TestClassifyReportsSense(t *testing.T) {
	d := Classify(StatusCheckCondition, golden(t, "sense_fixed_medium.hex"))
	if !d.SenseValid || d.Key != KeyMediumError || d.ASC != 0x11 || d.ASCQ != 0 {
		t.Errorf("%+v", d)
	}
	want := "fail: medium error [MEDIUM ERROR 0x11/0x00]"
	if d.String() != want {
		t.Errorf("String() = %q, want %q", d.String(), want)
	}
	if d := Classify(StatusBusy, nil); d.SenseValid {
		t.Errorf("no sense, yet SenseValid: %+v", d)
	}
}
