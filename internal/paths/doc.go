// Package paths is the multipath device: path groups, selectors, failback, no-path queueing, per-I/O deadlines, reroute, heartbeats and reconnect scheduling.
//
// TODO(owner): concurrency contract and order of effects.
package paths
