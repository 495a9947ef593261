// Package labkit is the small toolkit the lab's scenarios use inside the VM
// (test/lab/vm) and the lab runner (test/lab/cmd/labrun) uses on the host.
//
// It owns three things:
//
//   - The guest probe: [InVM] tells whether the code runs in a lab VM (the run
//     directory vm-run.sh shares with the guest is mounted). [RequireVM] skips
//     a test outside the VM; [RequireModule] loads a kernel module and, inside
//     the VM, fails the test when it cannot (the lab is where every module
//     must be present), while on any other machine it skips with the reason.
//   - The scenario record: [Record] (or [Begin] and [Scenario.Figure]) writes
//     the figures of one scenario as a [Fragment], a JSON file named after the
//     scenario under $LAB_OUT/scenarios/. The runner merges the fragments with
//     the tests' go test -json events into results.json.
//   - Helpers for scenario bodies: [Run] for commands, [RunFio] for fio with
//     its JSON report decoded into a [FioResult], [BootTime], and the
//     verified random I/O load [StartIOLoad] the failover scenarios of both
//     stacks run.
//   - The latency timeline: an [IORun] records every I/O it ends (completion
//     time, latency, read/write, failed) into a slice allocated at start
//     (no allocation per I/O; past [IOLoad].TimelineCap, I/Os are only
//     counted as dropped), plus named markers ([IORun.Mark]). [SaveTimeline]
//     writes it as a CSV file under $LAB_OUT/timelines/ next to the
//     scenario's fragment; [ReadTimeline] decodes it for the runner's plots,
//     drawn on the host.
//
// Concurrency: a [Scenario] may be used from several goroutines; it writes its
// fragment under a mutex. An [IORun] takes samples, markers and stats under
// one mutex; a snapshot ([IORun.Stats], [IORun.Stop]) shares the timeline's
// written samples, which are never written again. Everything else is
// stateless.
//
// Order of effects: [Begin] registers a t.Cleanup that writes the fragment one
// last time after the test finished, with OK = !t.Failed(). Every [Scenario.Figure]
// and [Record] also rewrites the fragment at once, so the figures measured so
// far survive a kernel hang that kills the VM before the cleanup runs.
package labkit
