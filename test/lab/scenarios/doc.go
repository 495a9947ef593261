// Package scenarios holds the lab's scenarios: ordinary go tests, built only
// with the build tag "lab", that run inside the lab VM (test/lab/vm) on the
// lab's Debian kernel. The runner (test/lab/cmd/labrun) builds this package
// with `go test -c -tags lab`, boots one VM per suite, runs the binary there
// with -test.run selecting the suite's tests, and merges each test's result
// with the figures it recorded through labkit into results.json.
//
// Every test starts with labkit.RequireVM, so the binary is harmless on a
// development machine: each test skips with the reason. Inside the VM a
// missing kernel module fails (labkit.RequireModule).
//
// The ublk scenarios need a server process they can kill -9 and restart:
// the test binary re-executes itself with LAB_UBLK_SERVE set (see TestMain
// in main_lab_test.go) and then serves one ublk device from that process.
// The e2e scenarios run srp-mpathd itself the same way (daemonlab: the
// binary re-executed with LAB_DAEMON_ARGS runs cli.Main) against LIO's
// ib_srpt on the srplab fabric; the kernel-* scenarios measure the kernel's
// ib_srp + multipathd on the same fabric and load in the same run, and the
// e2e figures carry the ratio.
//
// Concurrency: the tests do not call t.Parallel; a suite runs its scenarios
// one after the other in one kernel, each leaving the kernel as it found it
// (devices deleted, modules may stay loaded).
package scenarios
