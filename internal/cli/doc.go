// Package cli holds the srp-mpathd command tree (cobra), one file per command.
//
// Commands talk to a running daemon over its control socket (package
// daemon's Client); every read command takes --json. The root command is
// built fresh by NewRoot for every invocation, so tests drive it with
// SetArgs/SetOut and no global state leaks between runs.
//
// Exit codes (documented in every command's help): 0 success; 1 the
// operation failed; 2 bad command line or bad input, including what the
// daemon refused as such (unknown device or path, bad policy value: HTTP
// 4xx from the control API); 3 the control socket could not be reached
// (daemon.ErrNoDaemon). Main maps errors to them in exitCode, in one place.
//
// Concurrency: a command runs on the caller's goroutine. Only two start
// goroutines: daemon (it hands over to internal/daemon and forwards SIGHUP
// as reload requests until its context ends) and demo (internal/daemon's
// RunDemo); both stop them before they return.
package cli
