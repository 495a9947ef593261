package discovery

import (
	"errors"
	"fmt"
)

// Sentinel errors; wrapped in *OpError or *RuleError, matched with errors.Is.
var (
	// ErrNotInfiniBand: the port is not InfiniBand (RoCE has no subnet
	// administrator: use static targets).
	ErrNotInfiniBand = errors.New("discovery: port is not InfiniBand")
	// ErrPortDown: the local port is not active.
	ErrPortDown = errors.New("discovery: port not active")
	// ErrNoSM: the port knows no subnet manager (SM LID 0).
	ErrNoSM = errors.New("discovery: no subnet manager")
	// ErrBadResponse: a response that does not decode, answers another
	// transaction or carries the wrong attribute.
	ErrBadResponse = errors.New("discovery: bad MAD response")
	// ErrBadRule: a rules line that does not parse.
	ErrBadRule = errors.New("discovery: bad rule")
	// ErrBadTarget: a target description that does not parse.
	ErrBadTarget = errors.New("discovery: bad target description")
	// ErrNoPorts: nothing to scan (no port matched the selection).
	ErrNoPorts = errors.New("discovery: no port to scan")
)

// OpError records the step of a scan that failed and the local port it
// ran on.
type OpError struct {
	Op   string // e.g. "SA Get PathRecord", "DM Get IOUnitInfo"
	Port PortRef
	Err  error
}

func (e *OpError) Error() string { return fmt.Sprintf("discovery: %s on %v: %v", e.Op, e.Port, e.Err) }

func (e *OpError) Unwrap() error { return e.Err }

// RuleError is a rules-file line that does not parse.
type RuleError struct {
	Line int
	Text string
	Err  error
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("discovery: rules line %d %q: %v", e.Line, e.Text, e.Err)
}

func (e *RuleError) Unwrap() error { return e.Err }
