package paths

import (
	"strconv"
	"strings"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
)

// Grouping decides which paths share the load (dm-multipath's
// path_grouping_policy).
type Grouping uint8

const (
	// GroupFailover: one path per group; groups ordered by priority (higher
	// first), then by the order the paths were added. I/O goes to one path
	// at a time.
	GroupFailover Grouping = iota
	// GroupMultibus: every path in one group; the selector spreads I/O
	// over all usable paths.
	GroupMultibus
	// GroupByPrio: paths of equal priority form a group; the best group
	// with a usable path carries the I/O.
	GroupByPrio
)

var groupingNames = [...]string{GroupFailover: "failover", GroupMultibus: "multibus", GroupByPrio: "group_by_prio"}

func (g Grouping) String() string {
	if int(g) < len(groupingNames) {
		return groupingNames[g]
	}
	return "grouping(" + strconv.Itoa(int(g)) + ")"
}

// ParseGrouping reads a name printed by Grouping.String.
func ParseGrouping(s string) (Grouping, error) {
	for i, n := range groupingNames {
		if s == n {
			return Grouping(i), nil
		}
	}
	return 0, &PolicyError{Field: "path_grouping_policy", Value: s, Want: strings.Join(groupingNames[:], ", ")}
}

// Selector picks a path for each I/O within the active group
// (dm-multipath's path_selector).
type Selector uint8

const (
	// SelectServiceTime: the path with the smallest expected service time,
	// latency EWMA × (in-flight + 1). The default, as in dm-multipath.
	SelectServiceTime Selector = iota
	// SelectRoundRobin: each usable path in turn.
	SelectRoundRobin
	// SelectQueueLength: the path with the fewest I/O in flight.
	SelectQueueLength
)

var selectorNames = [...]string{SelectServiceTime: "service-time", SelectRoundRobin: "round-robin", SelectQueueLength: "queue-length"}

func (s Selector) String() string {
	if int(s) < len(selectorNames) {
		return selectorNames[s]
	}
	return "selector(" + strconv.Itoa(int(s)) + ")"
}

// ParseSelector reads a name printed by Selector.String.
func ParseSelector(s string) (Selector, error) {
	for i, n := range selectorNames {
		if s == n {
			return Selector(i), nil
		}
	}
	return 0, &PolicyError{Field: "path_selector", Value: s, Want: strings.Join(selectorNames[:], ", ")}
}

// Failback says when I/O returns to a better group that became usable again
// (dm-multipath's failback). Its zero value is FailbackImmediate; a positive
// value is a delay.
type Failback time.Duration

const (
	// FailbackImmediate switches back as soon as the better group is usable.
	FailbackImmediate Failback = 0
	// FailbackManual stays on the current group until the admin calls
	// (*Device).Failback or the current group has no usable path.
	FailbackManual Failback = -1
)

func (f Failback) String() string {
	switch {
	case f == FailbackImmediate:
		return "immediate"
	case f < 0:
		return "manual"
	}
	return time.Duration(f).String()
}

// ParseFailback reads "immediate", "manual", whole seconds or a Go duration.
func ParseFailback(s string) (Failback, error) {
	switch s {
	case "immediate":
		return FailbackImmediate, nil
	case "manual":
		return FailbackManual, nil
	}
	d, ok := parseSeconds(s)
	if !ok || d <= 0 {
		return 0, &PolicyError{Field: "failback", Value: s, Want: `"immediate", "manual" or a positive number of seconds`}
	}
	return Failback(d), nil
}

// NoPathRetry says what happens to I/O while no path is usable
// (dm-multipath's no_path_retry). Its zero value is NoPathQueue; a positive
// value queues that long, then fails.
type NoPathRetry time.Duration

const (
	// NoPathQueue keeps I/O until a path returns (queue_if_no_path).
	NoPathQueue NoPathRetry = 0
	// NoPathFail fails I/O at once.
	NoPathFail NoPathRetry = -1
)

func (n NoPathRetry) String() string {
	switch {
	case n == NoPathQueue:
		return "queue"
	case n < 0:
		return "fail"
	}
	return time.Duration(n).String()
}

// ParseNoPathRetry reads "queue", "fail", whole seconds or a Go duration.
func ParseNoPathRetry(s string) (NoPathRetry, error) {
	switch s {
	case "queue":
		return NoPathQueue, nil
	case "fail":
		return NoPathFail, nil
	}
	d, ok := parseSeconds(s)
	if !ok || d <= 0 {
		return 0, &PolicyError{Field: "no_path_retry", Value: s, Want: `"queue", "fail" or a positive number of seconds`}
	}
	return NoPathRetry(d), nil
}

func parseSeconds(s string) (time.Duration, bool) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > int64(maxPolicyDuration/time.Second) {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d > maxPolicyDuration {
		return 0, false
	}
	return d, true
}

// Defaults of Policy.
const (
	// DefaultHeartbeatInterval: a zero-length RDMA WRITE per path this often.
	DefaultHeartbeatInterval = 250 * time.Millisecond
	// DefaultHeartbeatTimeout: a heartbeat not ACKed within this blocks the
	// path. With the interval it bounds silent-loss detection to
	// interval+timeout (750 ms), well below the RC retry budget of
	// seconds.
	DefaultHeartbeatTimeout = 500 * time.Millisecond
	// DefaultIOTimeout: an attempt that has no response this long is
	// aborted (ABORT TASK) and reissued elsewhere; the SCSI disk default.
	DefaultIOTimeout = 30 * time.Second
	// DefaultAbortTimeout: an abort not answered this long fails the path
	// (fsm.AbortFailed). Matches srp.DefaultAbortTimeout.
	DefaultAbortTimeout = 5 * time.Second
	// DefaultMaxRetries bounds SCSI-level retries of one I/O (retry on the
	// same or another path after a CHECK CONDITION or an abort); path
	// failures (flushed commands) do not count.
	DefaultMaxRetries = 5
	// DefaultRetryBackoff is the pause before a retry the target asked to
	// delay (BUSY, becoming ready).
	DefaultRetryBackoff = 10 * time.Millisecond
	// DefaultReconnectJitter spreads reconnect attempts of many paths that
	// failed together.
	DefaultReconnectJitter = 500 * time.Millisecond
	// DefaultMaxReconnects and DefaultMaxReconnectsPerTarget bound the
	// reconnect attempts running at once (no reconnect storms).
	DefaultMaxReconnects          = 4
	DefaultMaxReconnectsPerTarget = 1
	// maxPolicyDuration bounds every duration setting (a typo guard that
	// also keeps deadline arithmetic far from overflow).
	maxPolicyDuration = 365 * 24 * time.Hour
	// maxRetriesLimit bounds MaxRetries (it is stored per tag in a byte).
	maxRetriesLimit = 100
)

// Policy is the multipath configuration of one device. It may be replaced
// at runtime (SetPolicy) without dropping I/O.
type Policy struct {
	Grouping    Grouping
	Selector    Selector
	Failback    Failback
	NoPathRetry NoPathRetry
	// HeartbeatInterval and HeartbeatTimeout drive the per-path heartbeat;
	// an interval of 0 disables heartbeats.
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	// IOTimeout aborts an attempt without response; AbortTimeout fails the
	// path when the abort is not answered.
	IOTimeout    time.Duration
	AbortTimeout time.Duration
	MaxRetries   int
	RetryBackoff time.Duration
	// Path holds each path's timers (reconnect_delay, fast_io_fail_tmo,
	// dev_loss_tmo, flap damping).
	Path fsm.Config
	// ReconnectJitter: each reconnect attempt starts after a random delay
	// in [0, ReconnectJitter). MaxReconnects and MaxReconnectsPerTarget
	// bound the attempts in progress, in all and per target.
	ReconnectJitter        time.Duration
	MaxReconnects          int
	MaxReconnectsPerTarget int
}

// DefaultPolicy returns dm-multipath's defaults (failover grouping,
// service-time), immediate failback, queueing without a path, ib_srp's
// timers and our heartbeat. internal/config has the same defaults.
func DefaultPolicy() Policy {
	return Policy{
		Grouping:               GroupFailover,
		Selector:               SelectServiceTime,
		Failback:               FailbackImmediate,
		NoPathRetry:            NoPathQueue,
		HeartbeatInterval:      DefaultHeartbeatInterval,
		HeartbeatTimeout:       DefaultHeartbeatTimeout,
		IOTimeout:              DefaultIOTimeout,
		AbortTimeout:           DefaultAbortTimeout,
		MaxRetries:             DefaultMaxRetries,
		RetryBackoff:           DefaultRetryBackoff,
		Path:                   fsm.DefaultConfig(),
		ReconnectJitter:        DefaultReconnectJitter,
		MaxReconnects:          DefaultMaxReconnects,
		MaxReconnectsPerTarget: DefaultMaxReconnectsPerTarget,
	}
}

// Validate checks every field and names the first bad one in a
// *PolicyError (the fsm's own *ConfigError for Path).
func (p Policy) Validate() error {
	bad := func(field, value, want string) error {
		return &PolicyError{Field: field, Value: value, Want: want}
	}
	dur := func(d time.Duration) string { return d.String() }
	switch {
	case int(p.Grouping) >= len(groupingNames):
		return bad("path_grouping_policy", p.Grouping.String(), strings.Join(groupingNames[:], ", "))
	case int(p.Selector) >= len(selectorNames):
		return bad("path_selector", p.Selector.String(), strings.Join(selectorNames[:], ", "))
	case time.Duration(p.Failback) > maxPolicyDuration:
		return bad("failback", p.Failback.String(), "at most "+maxPolicyDuration.String())
	case time.Duration(p.NoPathRetry) > maxPolicyDuration:
		return bad("no_path_retry", p.NoPathRetry.String(), "at most "+maxPolicyDuration.String())
	case p.HeartbeatInterval < 0 || p.HeartbeatInterval > maxPolicyDuration:
		return bad("heartbeat_interval", dur(p.HeartbeatInterval), "0 (off) or a positive duration")
	case p.HeartbeatInterval > 0 && (p.HeartbeatTimeout <= 0 || p.HeartbeatTimeout > maxPolicyDuration):
		return bad("heartbeat_timeout", dur(p.HeartbeatTimeout), "a positive duration when heartbeats are on")
	case p.IOTimeout <= 0 || p.IOTimeout > maxPolicyDuration:
		return bad("io_timeout", dur(p.IOTimeout), "a positive duration")
	case p.AbortTimeout <= 0 || p.AbortTimeout > maxPolicyDuration:
		return bad("abort_timeout", dur(p.AbortTimeout), "a positive duration")
	case p.MaxRetries < 0 || p.MaxRetries > maxRetriesLimit:
		return bad("max_retries", strconv.Itoa(p.MaxRetries), "0.."+strconv.Itoa(maxRetriesLimit))
	case p.RetryBackoff < 0 || p.RetryBackoff > maxPolicyDuration:
		return bad("retry_backoff", dur(p.RetryBackoff), "a non-negative duration")
	case p.ReconnectJitter < 0 || p.ReconnectJitter > maxPolicyDuration:
		return bad("reconnect_jitter", dur(p.ReconnectJitter), "a non-negative duration")
	case p.MaxReconnects < 1:
		return bad("max_reconnects", strconv.Itoa(p.MaxReconnects), "at least 1")
	case p.MaxReconnectsPerTarget < 1:
		return bad("max_reconnects_per_target", strconv.Itoa(p.MaxReconnectsPerTarget), "at least 1")
	}
	if err := p.Path.Validate(); err != nil {
		return &PolicyError{Field: "path timers", Value: err.Error(), Want: "kernel-valid timers", Err: err}
	}
	return nil
}

// String renders the policy in dm-multipath's words, for logs.
func (p Policy) String() string {
	var b strings.Builder
	b.WriteString("grouping=" + p.Grouping.String())
	b.WriteString(" selector=" + p.Selector.String())
	b.WriteString(" failback=" + p.Failback.String())
	b.WriteString(" no_path_retry=" + p.NoPathRetry.String())
	b.WriteString(" heartbeat=" + p.HeartbeatInterval.String() + "/" + p.HeartbeatTimeout.String())
	b.WriteString(" io_timeout=" + p.IOTimeout.String())
	b.WriteString(" reconnect_delay=" + p.Path.ReconnectDelay.String())
	b.WriteString(" fast_io_fail_tmo=" + p.Path.FastIOFailTmo.String())
	b.WriteString(" dev_loss_tmo=" + p.Path.DevLossTmo.String())
	return b.String()
}
