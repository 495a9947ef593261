package fsm

import (
	"errors"
	"strconv"
)

// ErrInvalidConfig is wrapped by every *ConfigError, so callers can test for
// any configuration rejection with errors.Is.
var ErrInvalidConfig = errors.New("fsm: invalid config")

// Rule names one validity rule of a Config. Rules 1-6 are the kernel's
// srp_tmo_valid() checks (drivers/scsi/scsi_transport_srp.c) in the kernel's
// order; the rest are ours, for flap damping.
type Rule uint8

// The validity rules, in the order Validate checks them.
const (
	// RuleAllOff: reconnect_delay, fast_io_fail_tmo and dev_loss_tmo are all
	// off (srp_tmo_valid rule 1: a dead path would never be detected as such
	// by multipath).
	RuleAllOff Rule = iota + 1
	// RuleReconnectDelayZero: reconnect_delay is 0 (srp_tmo_valid rule 2:
	// use off to disable reconnects; 0 would reconnect in a tight loop).
	RuleReconnectDelayZero
	// RuleFastIOFailMax: fast_io_fail_tmo exceeds MaxBlockTimeout
	// (srp_tmo_valid rule 3, SCSI_DEVICE_BLOCK_MAX_TIMEOUT).
	RuleFastIOFailMax
	// RuleDevLossMaxWithoutFastIOFail: fast_io_fail_tmo is off and
	// dev_loss_tmo exceeds MaxBlockTimeout (srp_tmo_valid rule 4: I/O would
	// stay blocked longer than the SCSI layer allows).
	RuleDevLossMaxWithoutFastIOFail
	// RuleDevLossMax: dev_loss_tmo is at or above MaxDevLossTmo
	// (srp_tmo_valid rule 5, dev_loss_tmo >= LONG_MAX/HZ).
	RuleDevLossMax
	// RuleFastIOFailBeforeDevLoss: both are set and fast_io_fail_tmo is not
	// below dev_loss_tmo (srp_tmo_valid rule 6).
	RuleFastIOFailBeforeDevLoss
	// RuleFlapCount: flap_count is negative or above MaxFlapCount.
	RuleFlapCount
	// RuleFlapDurationNegative: flap_window or hold_down is negative.
	RuleFlapDurationNegative
	// RuleFlapWindow: flap damping is on (flap_count > 0) but flap_window
	// is 0.
	RuleFlapWindow
	// RuleHoldDown: flap damping is on but hold_down is 0.
	RuleHoldDown
)

var ruleNames = [...]string{
	RuleAllOff:                      "all-off",
	RuleReconnectDelayZero:          "reconnect-delay-zero",
	RuleFastIOFailMax:               "fast-io-fail-max",
	RuleDevLossMaxWithoutFastIOFail: "dev-loss-max-without-fast-io-fail",
	RuleDevLossMax:                  "dev-loss-max",
	RuleFastIOFailBeforeDevLoss:     "fast-io-fail-before-dev-loss",
	RuleFlapCount:                   "flap-count",
	RuleFlapDurationNegative:        "flap-duration-negative",
	RuleFlapWindow:                  "flap-window",
	RuleHoldDown:                    "hold-down",
}

func (r Rule) String() string {
	if int(r) < len(ruleNames) && ruleNames[r] != "" {
		return ruleNames[r]
	}
	return "rule(" + strconv.Itoa(int(r)) + ")"
}

// ConfigError rejects a Config. It names the rule that failed and the values
// it saw; it wraps ErrInvalidConfig.
type ConfigError struct {
	Rule   Rule
	Config Config
}

func (e *ConfigError) Error() string {
	c := e.Config
	msg := "fsm: invalid config: rule " + e.Rule.String() + ": "
	switch e.Rule {
	case RuleAllOff:
		msg += "reconnect_delay, fast_io_fail_tmo and dev_loss_tmo are all off; at least one must be set"
	case RuleReconnectDelayZero:
		msg += "reconnect_delay is 0; use a positive delay or off"
	case RuleFastIOFailMax:
		msg += "fast_io_fail_tmo " + c.FastIOFailTmo.String() + " exceeds " + MaxBlockTimeout.String()
	case RuleDevLossMaxWithoutFastIOFail:
		msg += "fast_io_fail_tmo is off and dev_loss_tmo " + c.DevLossTmo.String() + " exceeds " + MaxBlockTimeout.String()
	case RuleDevLossMax:
		msg += "dev_loss_tmo " + c.DevLossTmo.String() + " is not below " + MaxDevLossTmo.String()
	case RuleFastIOFailBeforeDevLoss:
		msg += "fast_io_fail_tmo " + c.FastIOFailTmo.String() + " must be below dev_loss_tmo " + c.DevLossTmo.String()
	case RuleFlapCount:
		msg += "flap_count " + strconv.Itoa(c.FlapCount) + " is outside 0.." + strconv.Itoa(MaxFlapCount)
	case RuleFlapDurationNegative:
		msg += "flap_window " + c.FlapWindow.String() + ", hold_down " + c.HoldDown.String() + " and settle " + c.Settle.String() + " must not be negative"
	case RuleFlapWindow:
		msg += "flap_count " + strconv.Itoa(c.FlapCount) + " needs a positive flap_window"
	case RuleHoldDown:
		msg += "flap_count " + strconv.Itoa(c.FlapCount) + " needs a positive hold_down"
	default:
		msg += "unknown rule"
	}
	return msg
}

func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// ErrInvalidTimeout is wrapped by the *ParseError of ParseTimeout.
var ErrInvalidTimeout = errors.New("fsm: invalid timeout")

// ParseError rejects the text of a timeout setting.
type ParseError struct {
	Input string
}

func (e *ParseError) Error() string {
	return "fsm: invalid timeout " + strconv.Quote(e.Input) + `: want "off", whole seconds (the kernel's form) or a Go duration such as "1.5s"`
}

func (e *ParseError) Unwrap() error { return ErrInvalidTimeout }
