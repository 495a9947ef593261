// Package daemon is the composition root of srp-mpathd: it opens the
// identity store, builds the fabric, the multipath devices with their queue
// runners, the metrics registry and the control API explicitly (no globals,
// no init), and runs them as tasks under one errgroup.
//
// # What it owns
//
//   - Daemon (daemon.go): New validates Options; Run builds everything,
//     serves until its context ends and stops gracefully. Reload (SIGHUP,
//     forwarded by the CLI on Options.Reload) re-reads the configuration and
//     the store's policy overrides and applies them without dropping I/O.
//   - The fabric: FabricSim is a built-in topology (simfabric.go): 2
//     srptest targets × 2 paths, one independent sim link per path, one LU
//     per target. FabricRDMA is refused with ErrFabricUnavailable until
//     internal/verbs/rdma exists.
//   - Devices (device.go, runner.go): one paths.Device per LU, named
//     ublkb<dev id> with the id bound to the LU's WWID in the store. Until
//     the paths↔ublk adapter exists every device is served to an
//     in-process queue runner, which plays the ublk queue thread: it polls
//     the channels (heartbeat ACKs are seen that way, so it runs even idle)
//     and, with Options.SimWorkload, drives a verified random I/O workload
//     (workload.go) — the demo's stand-in for md. Status says whether ublk
//     is present and that it is not attached.
//   - The control API (api.go, views.go, client.go): HTTP + JSON on a unix
//     socket (mode 0660, root:SocketGroup); a read-only subset, /metrics and
//     the dashboard (dashboard.go, one server-rendered page, no external
//     assets) on the TCP MetricsListen. Errors carry a code that maps back
//     to this package's sentinels (errorCodes, the one translation).
//   - Metrics (metrics.go): a custom collector builds every series from the
//     paths snapshots at scrape time; the state set is exported as 0/1 for
//     every state. Names are the Metric* constants.
//   - The demo (demo.go): RunDemo runs the daemon's core with the workload
//     and injects link down, blackhole and DREQ on a schedule.
//
// # Concurrency
//
// Every exported method of Daemon is safe for concurrent use once Ready is
// closed: the device list is fixed by then and each paths.Device is itself
// safe; mu serialises policy changes and reloads (store write, then
// SetPolicy, per device). Each queue runner is one goroutine that alone
// owns its paths.Queue; it shares only atomics (latency histogram,
// workload counters) and the workload's mutex-guarded measurement window.
//
// # Order of effects
//
// Run: open the store → build the fabric → per LU: bind the WWID in the
// store (the id is persisted before anything names it) → create the
// paths.Device → write <RuntimeDir>/devices/ublkbN (the udev rule imports
// it, so it must exist before a block device appears) → start its queue
// runner → then, for all devices, add the paths (log in) → restore
// admin-failed paths from the store → bind the control socket and the
// metrics listener → READY=1 → serve; WATCHDOG=1 at half of WATCHDOG_USEC.
//
// Stop (the context ends, or a task fails): STOPPING=1 → the HTTP servers
// shut down → the queue runners stop submitting and drain the I/O in
// progress (bounded by DrainTimeout) → the devices close their channels →
// the udev files are removed only with RemoveDevices (otherwise the devices
// stay recoverable by the next daemon) → the fabric and the store close.
package daemon
