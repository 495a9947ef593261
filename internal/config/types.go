package config

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Timeout is a duration that can be switched off ("off"), like the kernel's
// SRP timers where "off" parses to -1.
type Timeout time.Duration

// TimeoutOff is the value of a Timeout set to "off".
const TimeoutOff Timeout = -1

// IsOff reports whether the timeout is switched off.
func (t Timeout) IsOff() bool { return t < 0 }

// Duration returns the timeout; it is negative when off.
func (t Timeout) Duration() time.Duration { return time.Duration(t) }

func (t Timeout) String() string {
	if t.IsOff() {
		return "off"
	}
	return time.Duration(t).String()
}

const (
	acceptDuration   = "a duration with a unit, e.g. 250ms, 15s, 10m"
	acceptTimeout    = acceptDuration + ", or off"
	acceptSelector   = "round-robin, queue-length, service-time"
	acceptGrouping   = "failover, multibus"
	acceptFailback   = "immediate, manual, or a delay: N (seconds) or a duration such as 30s"
	acceptNoPath     = "queue, fail, or a time limit: N (seconds) or a duration such as 60s"
	acceptGUID       = "16 hex digits with optional 0x, or xxxx:xxxx:xxxx:xxxx"
	acceptPKey       = "0x0001..0xffff, 0x8000 set = full membership; the low 15 bits must not be 0"
	acceptSource     = "an IP address, or <rdma device>:<port> such as mlx5_0:1"
	acceptSize       = "bytes, or a number with KiB or MiB"
	acceptAckTimeout = "an IB ACK timeout exponent 0..31 (4.096µs × 2^n; 14 ≈ 67ms; 0 = wait for ever)"
)

// ParseTimeout parses a duration with a unit or "off".
func ParseTimeout(s string) (Timeout, error) {
	if s == "off" {
		return TimeoutOff, nil
	}
	d, err := parseDuration(s)
	return Timeout(d), err
}

func parseDuration(s string) (time.Duration, error) {
	if _, err := strconv.ParseFloat(s, 64); err == nil && s != "0" {
		return 0, fmt.Errorf("%q has no unit", s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// Selector is the path selector of a device (dm-multipath's names).
type Selector uint8

// Selectors. The zero value is not a selector.
const (
	SelectorRoundRobin Selector = iota + 1
	SelectorQueueLength
	SelectorServiceTime
)

var selectorNames = map[Selector]string{
	SelectorRoundRobin: "round-robin", SelectorQueueLength: "queue-length", SelectorServiceTime: "service-time",
}

func (s Selector) String() string { return enumString(selectorNames, s) }

// ParseSelector parses round-robin, queue-length or service-time.
func ParseSelector(s string) (Selector, error) { return parseEnum(selectorNames, s, "a selector") }

// Grouping is how paths are grouped (dm-multipath's path_grouping_policy).
type Grouping uint8

// Groupings. The zero value is not a grouping.
const (
	GroupingFailover Grouping = iota + 1 // one path group per path: one active path
	GroupingMultibus                     // all paths in one group: I/O spread over all
)

var groupingNames = map[Grouping]string{GroupingFailover: "failover", GroupingMultibus: "multibus"}

func (g Grouping) String() string { return enumString(groupingNames, g) }

// ParseGrouping parses failover or multibus.
func ParseGrouping(s string) (Grouping, error) { return parseEnum(groupingNames, s, "a grouping") }

func enumString[E ~uint8](names map[E]string, v E) string {
	if n, ok := names[v]; ok {
		return n
	}
	return "unknown(" + strconv.Itoa(int(v)) + ")"
}

func parseEnum[E ~uint8](names map[E]string, s, what string) (E, error) {
	for v, n := range names {
		if n == s {
			return v, nil
		}
	}
	var zero E
	return zero, fmt.Errorf("%q is not %s", s, what)
}

// FailbackMode says when I/O returns to a better path group.
type FailbackMode uint8

// Failback modes. The zero value is not a mode.
const (
	FailbackImmediate FailbackMode = iota + 1
	FailbackManual
	FailbackDeferred // after Failback.Delay
)

var failbackModeNames = map[FailbackMode]string{
	FailbackImmediate: "immediate", FailbackManual: "manual", FailbackDeferred: "deferred",
}

func (m FailbackMode) String() string { return enumString(failbackModeNames, m) }

// Failback is dm-multipath's failback: immediate, manual or a delay.
type Failback struct {
	Mode  FailbackMode
	Delay time.Duration // FailbackDeferred only
}

func (f Failback) String() string {
	switch f.Mode {
	case FailbackImmediate:
		return "immediate"
	case FailbackManual:
		return "manual"
	case FailbackDeferred:
		return f.Delay.String()
	}
	return f.Mode.String()
}

// ParseFailback parses immediate, manual, N (seconds) or a duration.
func ParseFailback(s string) (Failback, error) {
	switch s {
	case "immediate":
		return Failback{Mode: FailbackImmediate}, nil
	case "manual":
		return Failback{Mode: FailbackManual}, nil
	}
	d, err := secondsOrDuration(s)
	if err != nil {
		return Failback{}, err
	}
	if d == 0 {
		return Failback{}, errors.New("a failback delay of 0 is immediate: write immediate")
	}
	return Failback{Mode: FailbackDeferred, Delay: d}, nil
}

// NoPathRetryMode says what happens to I/O when no path is usable.
type NoPathRetryMode uint8

// No-path modes. The zero value is not a mode.
const (
	NoPathQueue NoPathRetryMode = iota + 1 // queue until a path returns
	NoPathFail                             // fail at once
	NoPathTimed                            // queue for NoPathRetry.Limit, then fail
)

var noPathModeNames = map[NoPathRetryMode]string{NoPathQueue: "queue", NoPathFail: "fail", NoPathTimed: "timed"}

func (m NoPathRetryMode) String() string { return enumString(noPathModeNames, m) }

// NoPathRetry is dm-multipath's no_path_retry, with a time limit instead of
// a count of checker intervals.
type NoPathRetry struct {
	Mode  NoPathRetryMode
	Limit time.Duration // NoPathTimed only
}

func (n NoPathRetry) String() string {
	switch n.Mode {
	case NoPathQueue:
		return "queue"
	case NoPathFail:
		return "fail"
	case NoPathTimed:
		return n.Limit.String()
	}
	return n.Mode.String()
}

// ParseNoPathRetry parses queue, fail, N (seconds) or a duration.
func ParseNoPathRetry(s string) (NoPathRetry, error) {
	switch s {
	case "queue":
		return NoPathRetry{Mode: NoPathQueue}, nil
	case "fail":
		return NoPathRetry{Mode: NoPathFail}, nil
	}
	d, err := secondsOrDuration(s)
	if err != nil {
		return NoPathRetry{}, err
	}
	if d == 0 {
		return NoPathRetry{}, errors.New("a limit of 0 fails at once: write fail")
	}
	return NoPathRetry{Mode: NoPathTimed, Limit: d}, nil
}

// maxSeconds bounds a bare number of seconds (a year).
const maxSeconds = 365 * 24 * 3600

func secondsOrDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > maxSeconds {
			return 0, fmt.Errorf("%d seconds is outside 0..%d", n, maxSeconds)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a keyword, a number of seconds or a duration", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// AckTimeout is the IB local ACK timeout exponent of the RC QP: a send is
// retried after 4.096µs × 2^n without an ACK, retry_count times. We take the
// exponent, not a duration, because the wire carries only the exponent and a
// rounded duration would surprise.
type AckTimeout uint8

// maxAckTimeout is the largest exponent (5 bits in the QP context).
const maxAckTimeout = 31

// ackTimeoutUnit is 4.096µs, the IB ACK timeout base.
const ackTimeoutUnit = 4096 * time.Nanosecond

// Duration returns the time one try waits; 0 means for ever.
func (a AckTimeout) Duration() time.Duration {
	if a == 0 {
		return 0
	}
	return ackTimeoutUnit << a
}

func (a AckTimeout) String() string { return strconv.Itoa(int(a)) }

// GUID is a 64-bit InfiniBand/SRP identifier (id_ext, ioc_guid, service id,
// initiator_ext).
type GUID uint64

func (g GUID) String() string { return fmt.Sprintf("0x%016x", uint64(g)) }

// ParseGUID parses 16 hex digits with optional 0x, or four colon-separated
// groups of 4 hex digits (the configfs form).
func ParseGUID(s string) (GUID, error) {
	h := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if parts := strings.Split(s, ":"); len(parts) == 4 {
		for _, p := range parts {
			if len(p) != 4 {
				return 0, fmt.Errorf("%q is not a GUID", s)
			}
		}
		h = strings.Join(parts, "")
	}
	if len(h) != 16 {
		return 0, fmt.Errorf("%q is not a GUID (%d hex digits, want 16)", s, len(h))
	}
	v, err := strconv.ParseUint(h, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a GUID (not hex)", s)
	}
	return GUID(v), nil
}

// PKey is an InfiniBand partition key; bit 15 is full membership.
type PKey uint16

// PKeyDefault is the default partition, full membership.
const PKeyDefault PKey = 0xffff

const pkeyFullMember = 0x8000

// Full reports full membership.
func (p PKey) Full() bool { return p&pkeyFullMember != 0 }

func (p PKey) String() string { return fmt.Sprintf("0x%04x", uint16(p)) }

// ParsePKey parses 0x0001..0xffff (hex with 0x).
func ParsePKey(s string) (PKey, error) {
	h, ok := strings.CutPrefix(strings.ToLower(s), "0x")
	if !ok || len(h) == 0 || len(h) > 4 {
		return 0, fmt.Errorf("%q is not a P_Key", s)
	}
	v, err := strconv.ParseUint(h, 16, 16)
	if err != nil {
		return 0, fmt.Errorf("%q is not a P_Key (not hex)", s)
	}
	if v&^pkeyFullMember == 0 {
		return 0, fmt.Errorf("%s is not a valid P_Key (partition number 0)", s)
	}
	return PKey(v), nil
}

// Source is the local end of a path: an IP address (RDMA/CM binds to it) or
// an RDMA device and port. The zero value means "let routing choose".
type Source struct {
	Addr   netip.Addr
	Device string
	Port   uint8
}

// IsZero reports an unset source.
func (s Source) IsZero() bool { return s == Source{} }

func (s Source) String() string {
	switch {
	case s.Addr.IsValid():
		return s.Addr.String()
	case s.Device != "":
		return fmt.Sprintf("%s:%d", s.Device, s.Port)
	}
	return ""
}

var deviceName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// ParseSource parses an IP address or device:port.
func ParseSource(s string) (Source, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return Source{Addr: a}, nil
	}
	dev, port, ok := strings.Cut(s, ":")
	if !ok || !deviceName.MatchString(dev) {
		return Source{}, fmt.Errorf("%q is neither an IP address nor device:port", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 255 {
		return Source{}, fmt.Errorf("%q: port %q is not 1..255", s, port)
	}
	return Source{Device: dev, Port: uint8(n)}, nil
}

// Size is a byte count.
type Size int64

const (
	kib = 1 << 10
	mib = 1 << 20
)

func (s Size) String() string {
	switch {
	case s >= mib && s%mib == 0:
		return fmt.Sprintf("%dMiB", s/mib)
	case s >= kib && s%kib == 0:
		return fmt.Sprintf("%dKiB", s/kib)
	}
	return strconv.FormatInt(int64(s), 10)
}

// ParseSize parses bytes, or a number followed by KiB or MiB.
func ParseSize(s string) (Size, error) {
	num, mult := s, int64(1)
	if n, ok := strings.CutSuffix(s, "KiB"); ok {
		num, mult = n, kib
	} else if n, ok := strings.CutSuffix(s, "MiB"); ok {
		num, mult = n, mib
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > (1<<40)/mult {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return Size(v * mult), nil
}
