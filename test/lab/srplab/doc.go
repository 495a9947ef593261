// Package srplab builds the lab's SRP fabric and target inside the lab VM
// (test/lab/vm) and offers the faults the end-to-end scenarios inject. It
// also drives the kernel's own SRP stack (ib_srp + dm-multipath), the
// baseline srp-mpathd is measured against in the same run.
//
// Topology ([Setup] with Options{Paths: P, Targets: T, LUs: L}):
//
//	path i (0 <= i < P*T, target k = i / P):
//	  vethI<i> 198.18.<i>.1  rxe_i<i>   (initiator side)
//	      |  veth pair: the only wire of the path (faults act here)
//	  vethT<i> 198.18.<i>.2  rxe_t<i>   (target side)
//	  srpt tport 0x<GID of rxe_t<i>>/tpgt_1: LUN j -> backstore of LU (k, j),
//	    ACLs 0x<initiator_ext><GID interface id of rxe_i<i>> for every
//	    Options.InitiatorExts value and every Lab.AddACL
//	LIO backstores: core/rd_mcp_0/srplab_t<k>_l<j>, RAM disks with
//	  vpd_unit_serial set, so VPD 0x83 carries an NAA 6 designator.
//	ib_srpt listens for RDMA/CM logins on Options.Port (configfs
//	  discovery_auth/rdma_cm_port).
//
// A "target" is a set of tports (target-side RDMA ports) exporting the same
// LUs. Every srpt port presents the same target port id (id_ext = ioc_guid =
// srpt_service_guid, a module-wide value), so two targets differ by their
// ports, addresses and LUs, not by their port id; for md across targets use
// Targets: 2 and one LU of each.
//
// Both ends share init_net (rxe and the SRP ULPs work only there). The local
// routing rule is moved behind per-address rules (from <addr> iif lo lookup
// <table>), with accept_local=1 and rp_filter=0, so traffic from each
// address leaves through its own veth instead of rxe's loopback shortcut.
// An initiator must therefore bind its source address (src= for ib_srp,
// rdma_resolve_addr(src, dst) in user space).
//
// Faults: [Lab.LinkDown]/[Lab.LinkUp] (port error events, QP flush; a CM
// message an initiator sends meanwhile kills the rxe device's GSI QP for
// good, see LinkDown),
// [Lab.Blackhole] (a drop filter on the ingress of both veths, on the
// clsact qdisc Setup installs: silent to both senders), [Lab.KillSessions]
// (the path's TPG disabled and re-enabled: srpt disconnects every channel,
// the initiator gets a DREQ), [Lab.RestartTarget] (srpt configuration
// removed, module unloaded and reloaded, configuration restored; the RAM
// disks keep their data).
//
// Concurrency: Setup, KernelLogin and StartMultipath run on the test
// goroutine (they fail or clean up through t). The fault methods return
// errors and may run on any goroutine, one at a time per path.
//
// Order of effects: Setup loads modules, builds the network, waits for every
// rxe port to be ACTIVE, then creates the backstores and configures srpt;
// its cleanups undo the target, then the network. KernelLogin and
// StartMultipath register cleanups after Setup's, so they run first:
// multipathd stops and maps are flushed, then the remote ports are deleted,
// then the target and network go.
package srplab
