// Package daemon is the composition root of srp-mpathd: it loads the configuration, opens the identity store, builds the fabric, the path manager, the ublk devices, the metrics registry and the control API explicitly (no globals, no init), and runs them as tasks under one errgroup, with sd_notify READY only once every task is ready.
//
// TODO(owner): concurrency contract and order of effects.
package daemon
