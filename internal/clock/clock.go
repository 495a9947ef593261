// Package clock is the injectable time source of the daemon's control plane
// and of the simulated fabric.
//
// Production code takes a Clock and uses Real. Tests use either Real inside a
// testing/synctest bubble (fake time, real code) or a Manual clock that moves
// only when the test says so. internal/fsm does not use this package: its
// events carry their time.
//
// Concurrency: every implementation is safe for concurrent use.
package clock

import "time"

// Clock tells the time and schedules callbacks.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine (Real) or from Advance (Manual)
	// once d has elapsed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a scheduled callback.
type Timer interface {
	// Stop prevents the callback from running; it reports whether it did.
	Stop() bool
}

// Real is the system clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// AfterFunc wraps time.AfterFunc.
func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
