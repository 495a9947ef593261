package fsm

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Timeout is one of the kernel's rport timer settings: a non-negative
// duration, or Off. The kernel stores these as int seconds where any negative
// value (written as "off", parsed to -1 by srp_parse_tmo) disables the timer;
// Timeout keeps that encoding so the zero value is a real 0, as in the kernel.
// Unlike the kernel, a Timeout may have sub-second precision.
type Timeout time.Duration

// Off disables a timer (the kernel's -1, shown as "off" in sysfs).
const Off Timeout = -1

// IsOff reports whether the timer is disabled (any negative value, as the
// kernel tests "tmo < 0").
func (t Timeout) IsOff() bool { return t < 0 }

// Duration returns the setting as a duration; it is meaningless when IsOff.
func (t Timeout) Duration() time.Duration { return time.Duration(t) }

// String renders "off" or a Go duration.
func (t Timeout) String() string {
	if t.IsOff() {
		return "off"
	}
	return time.Duration(t).String()
}

// ParseTimeout reads "off" (any case), a whole number of seconds (the kernel's
// sysfs form; a negative number is off, as in the kernel) or a Go duration
// ("1.5s", "10m"; a negative duration is rejected as a likely typo).
func ParseTimeout(s string) (Timeout, error) {
	v := strings.TrimSpace(s)
	if strings.EqualFold(v, "off") {
		return Off, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return Off, nil
		}
		if n > math.MaxInt64/int64(time.Second) {
			return 0, &ParseError{Input: s}
		}
		return Timeout(time.Duration(n) * time.Second), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, &ParseError{Input: s}
	}
	return Timeout(d), nil
}

const (
	// MaxBlockTimeout is SCSI_DEVICE_BLOCK_MAX_TIMEOUT (drivers/scsi/scsi_priv.h,
	// 600 s): how long the kernel lets I/O sit blocked. srp_tmo_valid rules 3
	// and 4 bound fast_io_fail_tmo (and dev_loss_tmo when fast_io_fail_tmo is
	// off) by it.
	MaxBlockTimeout Timeout = Timeout(600 * time.Second)

	// MaxDevLossTmo bounds dev_loss_tmo (srp_tmo_valid rule 5). The kernel's
	// bound is LONG_MAX/HZ seconds, which keeps dev_loss_tmo*HZ jiffies from
	// overflowing; on 64-bit kernels the int-typed parameter can never reach
	// it, so the effective kernel ceiling is INT_MAX seconds. We use that
	// ceiling: it also keeps every deadline we compute well inside
	// time.Duration's range.
	MaxDevLossTmo Timeout = Timeout(math.MaxInt32 * time.Second)

	// MaxFlapCount bounds the failure history a Path keeps (one time.Time per
	// counted failure, allocated once in New).
	MaxFlapCount = 1024
)

// Defaults: ib_srp's module parameters (drivers/infiniband/ulp/srp/ib_srp.c:
// reconnect_delay=10, fast_io_fail_tmo=15, dev_loss_tmo=600) and our flap
// damping: a path that dropped DefaultFlapCount times within
// DefaultFlapWindow (each drop forces a reissue of its in-flight I/O) must
// stay up for DefaultHoldDown before it carries I/O again.
const (
	DefaultReconnectDelay = Timeout(10 * time.Second)
	DefaultFastIOFailTmo  = Timeout(15 * time.Second)
	DefaultDevLossTmo     = Timeout(600 * time.Second)
	DefaultFlapCount      = 3
	DefaultFlapWindow     = 2 * time.Minute
	DefaultHoldDown       = 30 * time.Second
)

// Config holds the timers of one path. The zero value is invalid (a zero
// reconnect_delay, as in the kernel); start from DefaultConfig.
type Config struct {
	// ReconnectDelay is the kernel's reconnect_delay: the first reconnect
	// attempt is made this long after the first error, later ones after a
	// backoff (see Backoff). Off: no automatic reconnect.
	ReconnectDelay Timeout
	// FastIOFailTmo is the kernel's fast_io_fail_tmo, counted from the first
	// error: blocked becomes fail-fast. Off: stay blocked.
	FastIOFailTmo Timeout
	// DevLossTmo is the kernel's dev_loss_tmo, counted from the first error:
	// the path is lost and removed. Off: never.
	DevLossTmo Timeout

	// FlapCount failures that take the path out of service within
	// FlapWindow mark it as flapping; after its next successful reconnect it
	// is held down for HoldDown before it carries I/O. 0 disables damping.
	FlapCount  int
	FlapWindow time.Duration
	HoldDown   time.Duration
	// Settle holds down every path that reconnects, flapping or not, for
	// this long before it carries I/O again (the configuration's
	// hold_down); a flapping path waits the longer of Settle and HoldDown.
	// 0: a recovered path runs at once.
	Settle time.Duration
}

// DefaultConfig returns ib_srp's defaults plus our flap damping defaults.
func DefaultConfig() Config {
	return Config{
		ReconnectDelay: DefaultReconnectDelay,
		FastIOFailTmo:  DefaultFastIOFailTmo,
		DevLossTmo:     DefaultDevLossTmo,
		FlapCount:      DefaultFlapCount,
		FlapWindow:     DefaultFlapWindow,
		HoldDown:       DefaultHoldDown,
	}
}

// Validate checks c against the kernel's srp_tmo_valid rules, in the kernel's
// order, then the flap damping rules. The error is a *ConfigError naming the
// first rule that failed.
func (c Config) Validate() error {
	if r := c.brokenRule(); r != 0 {
		return &ConfigError{Rule: r, Config: c}
	}
	return nil
}

func (c Config) brokenRule() Rule {
	rd, fio, dl := c.ReconnectDelay, c.FastIOFailTmo, c.DevLossTmo
	switch {
	case rd.IsOff() && fio.IsOff() && dl.IsOff():
		return RuleAllOff
	case rd == 0:
		return RuleReconnectDelayZero
	case fio > MaxBlockTimeout:
		return RuleFastIOFailMax
	case fio.IsOff() && dl > MaxBlockTimeout:
		return RuleDevLossMaxWithoutFastIOFail
	case dl >= MaxDevLossTmo:
		return RuleDevLossMax
	case !fio.IsOff() && !dl.IsOff() && fio >= dl:
		return RuleFastIOFailBeforeDevLoss
	case c.FlapCount < 0 || c.FlapCount > MaxFlapCount:
		return RuleFlapCount
	case c.FlapWindow < 0 || c.HoldDown < 0 || c.Settle < 0:
		return RuleFlapDurationNegative
	case c.FlapCount > 0 && c.FlapWindow == 0:
		return RuleFlapWindow
	case c.FlapCount > 0 && c.HoldDown == 0:
		return RuleHoldDown
	}
	return 0
}

// Backoff factors of srp_reconnect_work (drivers/scsi/scsi_transport_srp.c):
// after the n-th consecutive failed attempt the next one is made
// reconnect_delay * min(100, max(1, n-10)) later.
const (
	backoffFlatAttempts = 10
	backoffMaxFactor    = 100
)

// Backoff returns the delay before the next reconnect attempt after
// failedReconnects consecutive failures, as srp_reconnect_work computes it:
// reconnect_delay for the first 11 failures, then growing linearly by one
// reconnect_delay per failure up to 100 times reconnect_delay. It is 0 when
// delay is off (no further attempt). The product saturates instead of
// overflowing.
func Backoff(delay Timeout, failedReconnects int) time.Duration {
	if delay <= 0 {
		return 0
	}
	factor := min(backoffMaxFactor, max(1, failedReconnects-backoffFlatAttempts))
	d := time.Duration(delay)
	if d > math.MaxInt64/time.Duration(factor) {
		return math.MaxInt64
	}
	return d * time.Duration(factor)
}
