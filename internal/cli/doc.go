// Package cli holds the srp-mpathd command tree (cobra), one file per command.
//
// Commands talk to a running daemon over its control socket; every read
// command takes --json. The root command is built fresh by NewRoot for every
// invocation, so tests drive it with SetArgs/SetOut and no global state leaks
// between runs.
//
// Concurrency: a command runs on the caller's goroutine; nothing here starts
// goroutines except the daemon command, which hands over to internal/daemon.
package cli
