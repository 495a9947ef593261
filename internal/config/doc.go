// Package config loads and validates the srp-mpathd configuration file
// (YAML, default DefaultPath; the daemon's --config overrides it).
//
// # What it owns
//
// The file's schema and every rule about its values:
//
//   - defaults: device policy (selector, grouping, failback, no_path_retry,
//     io_timeout, queue_depth, ublk_queues, max_io_size) and path settings
//     (reconnect_delay, fast_io_fail_tmo, dev_loss_tmo, heartbeat_interval,
//     heartbeat_timeout, ack_timeout, retry_count, hold_down, flap_threshold,
//     flap_window, flap_hold_down). Path settings exist only in defaults: a
//     path (an RDMA channel to a target port) is shared by every LU behind
//     it, so a per-LU timer would have no single meaning.
//   - targets: static paths (address, port, id_ext, ioc_guid, service_id,
//     initiator_ext, source, pkey).
//   - devices: per-WWID overrides of the device policy.
//   - blacklist: rules of wwid/vendor/product regular expressions.
//   - discovery: fabric discovery (enabled auto|true|false, rescan_interval,
//     ports, pkeys, rules in srp_daemon.conf syntax). auto means on when the
//     file has no static targets (Config.DiscoveryActive). Ports and rules
//     are validated with internal/srp/discovery's own parsers (ParsePortRef,
//     ParseRule), so a rule the engine would refuse never loads; that is
//     this package's one import from the rest of the project.
//
// Value forms: durations carry a unit ("250ms", "15s"); "off" where a timer
// may be off (reconnect_delay, fast_io_fail_tmo, dev_loss_tmo,
// heartbeat_interval, io_timeout); failback and no_path_retry also take a
// bare number of seconds; ack_timeout is the IB exponent 0..31 (not a
// duration: the wire carries the exponent, so a rounded duration would
// mislead); GUIDs are 16 hex digits with optional 0x (or the configfs
// xxxx:xxxx:xxxx:xxxx form); P_Keys are 0x-hex 0x0001..0xffff.
//
// The three SRP timers obey the kernel's srp_tmo_valid
// (drivers/scsi/scsi_transport_srp.c), checked here on their own so that the
// config does not depend on internal/fsm: not all three off; reconnect_delay
// not 0; fast_io_fail_tmo ≤ 600s (SCSI_DEVICE_BLOCK_MAX_TIMEOUT);
// dev_loss_tmo ≤ 600s while fast_io_fail_tmo is off; fast_io_fail_tmo <
// dev_loss_tmo when both are on. (The kernel's dev_loss_tmo < LONG_MAX/HZ
// cannot fail for a Go duration.)
//
// # Errors
//
// yaml.v3 decodes with KnownFields(true); unknown keys, wrong shapes and
// bad values are all collected, never just the first, into one *Error whose
// FieldErrors read "line N: path.to.field: message (accepted: ...)", sorted
// by line. Nothing is half-applied: Parse and Load return either a whole
// valid *Config or nil.
//
// # Precedence
//
// Effective(wwid, override) merges defaults ← devices[wwid] ← the store's
// policy override (passed in as a PolicyOverride, so this package does not
// import internal/store).
//
// # Concurrency and effects
//
// Parse is pure; Load reads one file. A *Config is immutable once returned
// and safe to share between goroutines; a reload builds a new one.
package config
