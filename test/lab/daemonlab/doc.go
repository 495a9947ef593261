// Package daemonlab runs srp-mpathd itself — the daemon command, as
// cmd/srp-mpathd runs it — in the lab VM against srplab's fabric, for the
// e2e scenarios (issue 7) and the lab demo.
//
// It owns the daemon's lab configuration (static targets, one per srplab
// path, with the lab's timers) and the daemon's process: Start re-executes
// the test binary with EnvArgs, and the lab package's TestMain hands that
// command line to cli.Main (RunIfChild). The scenario talks to the daemon
// over its control socket (internal/daemon.Client) and drives faults on the
// fabric through srplab.
//
// Concurrency: a Daemon is used by one test goroutine; its exit is watched
// by one goroutine of its own. Order of effects: Start writes Dir/config.yaml,
// then starts the process (log appended to Dir/daemon.log); Stop/Kill9
// signal it and wait for the exit; t.Cleanup stops a daemon still running,
// deletes the ublk devices it served that are still there (a SIGTERM
// without RemoveDevices leaves them for recovery, and the next test's
// fresh store would bind the same ids), copies the run's log to
// $LAB_OUT/daemonlab/<test>-<pid>.log and, when the test failed, logs the
// log's tail. Cleanups run last-in first-out, so a restarted daemon's
// cleanup runs before its predecessor's, and both before srplab's
// teardown (registered earlier).
package daemonlab
