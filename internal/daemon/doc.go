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
//   - The fabric: both produce endpoints (endpoint.go: one path to a
//     target port, with its local device and a dial function).
//     FabricSim is a built-in topology (simfabric.go): 2 srptest targets ×
//     2 paths, one independent sim link per path, one LU per target.
//     FabricRDMA (rdmafabric.go) is rdma-core with the configuration's
//     static targets, one entry per path; each source address is mapped
//     to its local RDMA device and port through sysfs (netlink for
//     IPoIB), each device is opened once; every channel of a path logs in
//     with the entry's initiator_ext and MULTI (one I_T nexus, as
//     ib_srp's channels).
//   - Identity (probe.go, endpoint.go): at start every endpoint logs in a
//     probe channel and runs REPORT LUNS, then per disk LU INQUIRY, VPD
//     0x83 (the WWID, multipath's form), READ CAPACITY(16) and MODE SENSE
//     caching, synchronously on the calling goroutine (Submit + Poll with
//     a deadline, one registered buffer). The paths are grouped by WWID;
//     a path whose capacity or block size differs from the first path's
//     is refused with ErrIdentityMismatch. Every channel a path makes
//     later (each queue, each reconnect) is checked again the same way
//     before it carries I/O, so a path that now reaches another LU stays
//     down with that reason. An endpoint whose probe fails at start is
//     retried in the background each reconnect_delay (late.go) and joins
//     its WWID's device when it comes up with the same identity; an LU
//     first seen then gets its device (store id, runner or ublk device).
//   - Discovery (discovery.go): with the config's discovery on (auto: no
//     static targets), the engine of internal/srp/discovery runs on the
//     fabric's InfiniBand ports — on FabricSim every port is IB, each link
//     a subnet with an SM/SA and a DM agent per target port, so the
//     targets are discovered, not hard-wired (SimTopology describes other
//     layouts: partitions, targets that join later). The first scan of
//     every port is awaited (bounded) before the devices are built. Then:
//     TargetFound → probe and admit on its own task (new LU: new device;
//     known WWID: another path); trap 65 → every path to the GID reported
//     fsm.Trap65 at once on the event goroutine; trap 64 is followed by
//     the engine's scan of that GID; PORT_ERR/PORT_ACTIVE reach the paths
//     through the daemon's own event readers. On FabricRDMA a discovered
//     target that is a static one (same port id, same local port) lends
//     its GID to the static path, so trap 65 blocks it; any other is
//     reported but not logged in (no GID → IPoIB mapping, no AF_IB yet).
//     Discovery settings are read at start; a reload does not change them.
//   - Devices (device.go, blockdev.go, runner.go): one paths.Device per
//     WWID, named ublkb<dev id> with the id bound to the WWID in the
//     store. With FabricRDMA and /dev/ublk-control present, each is a
//     ublk device (paths.NewUblkHandler; the queues bind and register
//     their tag buffers when ublk starts them), recovered when a previous
//     daemon left it, added otherwise. Without ublk (the simulator,
//     --no-ublk, no ublk_drv) each device is served to an in-process
//     queue runner, which plays the ublk queue thread: it polls the
//     channels (heartbeat ACKs are seen that way, so it runs even idle)
//     and, with Options.SimWorkload, drives a verified random I/O
//     workload (workload.go) — the demo's stand-in for md. Status says
//     which.
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
// closed: the device list only grows (devsMu; a new device is created
// under mu, so reloads and policy changes see every device) and each
// paths.Device is itself safe; mu serialises policy changes, reloads
// (store write, then SetPolicy, per device) and device creation; admitMu
// serialises admissions after start; specMu guards each device's specs.
// Discovery events are read by one goroutine; probes run on their own. Each queue runner is one goroutine that alone
// owns its paths.Queue; it shares only atomics (latency histogram,
// workload counters) and the workload's mutex-guarded measurement window.
//
// # Order of effects
//
// Run: open the store → build the fabric (rdma: open ublk control) →
// start discovery and await its first scan of every port →
// probe every endpoint (in parallel, each bounded by ProbeTimeout) and
// group by WWID → per LU: bind the WWID in the store (the id is persisted
// before anything names it) → create the paths.Device → write
// <RuntimeDir>/devices/ublkbN (the udev rule imports it, so it must exist
// before a block device appears) → start its queue runner (no ublk) →
// then, for all devices, add the paths (log in) → restore admin-failed
// paths from the store → open the ublk devices (their partition scan
// needs the paths) → bind the control socket and the metrics listener →
// READY=1 → serve; WATCHDOG=1 at half of WATCHDOG_USEC.
//
// Stop (the context ends, or a task fails): STOPPING=1 → the HTTP servers
// shut down → the queue runners stop submitting and drain the I/O in
// progress (bounded by DrainTimeout) → each ublk device is detached (left
// quiesced for recovery) or, with RemoveDevices, stopped and deleted,
// bounded by DrainTimeout → the devices close their channels →
// the udev files are removed only with RemoveDevices (otherwise the devices
// stay recoverable by the next daemon) → the fabric and the store close.
package daemon
