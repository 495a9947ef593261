// Package discovery finds SRP targets on an InfiniBand fabric, replacing
// srp_daemon: one-shot (Discover, what `srp-mpathd discover` prints, like
// `ibsrpdm -c`) and continuous (Engine, what the daemon logs in to).
//
// # What it owns
//
// The discovery sequence of research/srp-protocol.md §4.3, over the verbs
// seam's MAD port, with the codecs of internal/srp/mad. Per local
// InfiniBand port: SA ClassPortInfo; the DM-capable ports (PortInfoRecord
// GetTable by capability-mask match, or a NodeRecord walk when the SA
// cannot match); each one's port GUID (NodeRecord); per P_Key of the local
// table (restricted by Options.PKeys) an SA PathRecord asking whether the
// partition is shared — the MAD status is checked, so "no records" means
// not shared and any other status fails that remote, where srp_daemon reads
// no status at all; then, through each shared partition, its P_Key
// resolved to its current index first, DM IOUnitInfo → IOControllerProfile
// per present slot → ServiceEntries four at a time, keeping entries named
// "SRP.T10:<id_ext>". Each becomes a Target (id_ext, ioc_guid, dgid, pkey,
// service_id, the IOC's send size as the maximum IU), filtered by Rules in
// the spirit of srp_daemon.conf. RoCE ports have no SA: they are skipped
// (or refused when named) and Options.Static supplies their targets.
//
// The Engine subscribes every port to traps 64, 65 and 144 (srp_daemon
// omits 65) before each full scan, answers every Report with a ReportResp,
// and reports through Events: TargetFound/TargetGone from scans,
// GIDOutOfService at once on trap 65 (the multipath layer blocks every
// path to that GID), GIDInService on trap 64 followed by a scan of that
// GID after TrapDelay, a scan of the LID of trap 144, PortError/PortActive
// relayed, ScanDone after each full scan. Full scans run at start, every
// RescanInterval, and on PORT_ACTIVE, LID, P_Key, GID or SM change and
// client reregister — which also renews the subscriptions the SM forgot.
//
// # Concurrency contract
//
// Discover and ParseX are safe for concurrent use. An Engine's Run runs
// once; it starts one goroutine per opened device (async events), one per
// port (trap Reports: so trap 65 never waits behind a scan that is waiting
// for a MAD timeout) and does the scans itself, one at a time; it waits for
// all of them before it returns. Events, Targets and Rescan are safe from
// any goroutine. Events is never dropped from: a consumer that stops
// reading stalls the engine.
//
// # Order of effects
//
// A full scan of a port: subscribe to the traps, scan, merge (within the
// part of the subnet the scan covered and reached, known targets not found
// are TargetGone; new ones, or ones whose GID was reported out of service,
// are TargetFound), then ScanDone. A remote whose scan failed keeps its
// targets. A Report: the event first, then the ReportResp. Trap 65 marks the
// GID's targets out of service but keeps them known: a later trap 64 and
// scan announce them found again, so the daemon re-logs-in. Run's exit:
// stop timers, unsubscribe on active ports (each MAD bounded by
// Options.MADTimeout), close the MAD ports and devices, wait, close Events.
package discovery
