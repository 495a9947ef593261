package main

import "time"

// Expect is one scenario a suite must report: its results.json name and the
// go test that records it (with labkit.Begin or labkit.Record).
type Expect struct {
	Name string // scenario name, as passed to labkit
	Test string // top-level test function that records it
}

// Suite is a set of scenarios that share one VM boot. Scenarios that can
// take the kernel down with them belong in a suite of their own.
type Suite struct {
	Name      string
	Package   string // go package holding the tests, relative to the module root
	Scenarios []Expect
	Mem       string        // guest memory, qemu syntax
	CPUs      int           // guest vCPUs
	Timeout   time.Duration // whole VM, boot to power-off
}

// suites is every lab suite, in run order. A new scenario needs a line here
// (the runner refuses to start when a test of a lab package is in no suite,
// and fails a scenario that is recorded but not listed).
var suites = []Suite{
	{
		Name:    "smoke",
		Package: "./test/lab/scenarios",
		Scenarios: []Expect{
			{Name: "lab-smoke", Test: "TestLabSmoke"},
		},
		Mem: "1G", CPUs: 2, Timeout: 3 * time.Minute,
	},
	{
		// ublk user recovery under kill -9 and md RAID1 on top (issue 5).
		Name:    "ublk",
		Package: "./test/lab/scenarios",
		Scenarios: []Expect{
			{Name: "ublk-fs-verify", Test: "TestUblkFsVerify"},
			{Name: "ublk-recover-kill9", Test: "TestUblkRecoverKill9"},
			{Name: "ublk-md-recover", Test: "TestUblkMDRecover"},
			{Name: "ublk-null-iops", Test: "TestUblkNullIOPS"},
		},
		Mem: "3G", CPUs: 2, Timeout: 15 * time.Minute,
	},
	{
		// The rdma-core provider (internal/verbs/rdma) on soft-RoCE (issue 7).
		Name:    "rdma",
		Package: "./test/lab/scenarios",
		Scenarios: []Expect{
			{Name: "rdma-verbs", Test: "TestRDMAVerbs"},
			{Name: "rdma-faults", Test: "TestRDMAFaults"},
		},
		Mem: "1G", CPUs: 2, Timeout: 6 * time.Minute,
	},
	{
		// The kernel stack's failover baseline (issue 7): ib_srp on two
		// paths + multipathd on the srplab fabric. A VM each: ib_srp's
		// reconnect after a path returns has hit kernel BUGs.
		Name:    "kernel-linkdown",
		Package: "./test/lab/scenarios",
		Scenarios: []Expect{
			{Name: "kernel-linkdown", Test: "TestKernelLinkDown"},
		},
		Mem: "2G", CPUs: 2, Timeout: 6 * time.Minute,
	},
	{
		Name:    "kernel-blackhole",
		Package: "./test/lab/scenarios",
		Scenarios: []Expect{
			{Name: "kernel-blackhole", Test: "TestKernelBlackhole"},
		},
		Mem: "2G", CPUs: 2, Timeout: 7 * time.Minute,
	},
	{
		// Target-side faults against the kernel stack: session removal
		// (DREQ) on one path, then a target restart.
		Name:    "kernel-dreq",
		Package: "./test/lab/scenarios",
		Scenarios: []Expect{
			{Name: "kernel-dreq", Test: "TestKernelDREQ"},
		},
		Mem: "2G", CPUs: 2, Timeout: 8 * time.Minute,
	},
	{
		// srp-mpathd's own SRP channel (internal/srp over internal/verbs/rdma)
		// against LIO ib_srpt on the srplab fabric (issue 7 item 3, stage 1).
		Name:    "e2e-channel",
		Package: "./test/lab/scenarios",
		Scenarios: []Expect{
			{Name: "e2e-srp-channel", Test: "TestE2ESRPChannel"},
		},
		Mem: "2G", CPUs: 2, Timeout: 6 * time.Minute,
	},
	{
		// srp-mpathd itself (`srp-mpathd daemon --fabric rdma`, run by
		// test/lab/daemonlab as a child of each test) serving LIO's LU as
		// /dev/ublkbN: identity across a restart and the IOPS figure on the
		// same daemon, then failover under load (issue 7 item 3). The
		// kernel-* suites of the same run give kernel_stall_ms and
		// kernel_iops.
		Name:    "e2e-failover",
		Package: "./test/lab/scenarios",
		Scenarios: []Expect{
			{Name: "e2e-login-identity", Test: "TestE2ELoginIdentity"},
			{Name: "e2e-iops", Test: "TestE2ELoginIdentity"},
			{Name: "e2e-linkdown", Test: "TestE2ELinkDown"},
			{Name: "e2e-blackhole", Test: "TestE2EBlackhole"},
			{Name: "e2e-dreq", Test: "TestE2EDREQ"},
		},
		Mem: "2G", CPUs: 2, Timeout: 14 * time.Minute,
	},
	{
		// Every path of the daemon's device down: for 30 s (I/O waits and
		// completes), and past dev_loss_tmo (I/O gets EIO, the device
		// stays, the daemon logs in again and I/O resumes) (issue 7 item 3);
		// and the daemon stopped and restarted while its I/O waits for a
		// path (the next daemon serves it).
		Name:    "e2e-allpaths",
		Package: "./test/lab/scenarios",
		Scenarios: []Expect{
			{Name: "e2e-allpaths-short", Test: "TestE2EAllPathsShort"},
			{Name: "e2e-allpaths-long", Test: "TestE2EAllPathsLong"},
			{Name: "e2e-allpaths-restart", Test: "TestE2EAllPathsRestart"},
		},
		Mem: "2G", CPUs: 2, Timeout: 10 * time.Minute,
	},
	{
		// 20 flaps of the active path under a verified load (issue 7
		// item 3).
		Name:    "e2e-flaps",
		Package: "./test/lab/scenarios",
		Scenarios: []Expect{
			{Name: "e2e-flaps", Test: "TestE2EFlaps"},
		},
		Mem: "2G", CPUs: 2, Timeout: 12 * time.Minute,
	},
	{
		// md RAID1 across the LUs of two targets, served by the real
		// daemon, ext4 on top: kill -9 of the daemon under a write load,
		// restart, ublk user recovery (issue 7 item 3).
		Name:    "e2e-md-kill9",
		Package: "./test/lab/scenarios",
		Scenarios: []Expect{
			{Name: "e2e-md-kill9", Test: "TestE2EMDKill9"},
		},
		Mem: "2G", CPUs: 2, Timeout: 10 * time.Minute,
	},
	{
		// The lab demo (make demo, issue 7 item 4): the real daemon under
		// the verified load while path 0's link goes down, against the
		// kernel-linkdown baseline of the same run; labrun plots both
		// latency timelines (latency-demo.png).
		Name:    "demo",
		Package: "./test/lab/scenarios",
		Scenarios: []Expect{
			{Name: "demo", Test: "TestDemo"},
		},
		Mem: "3G", CPUs: 2, Timeout: 10 * time.Minute,
	},
}
