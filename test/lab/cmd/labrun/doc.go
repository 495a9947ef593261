// Command labrun runs the VM lab: it fetches the lab kernel, builds the lab
// test binaries (go test -c -tags lab), boots one VM per suite with
// test/lab/vm/vm-run.sh, runs the suite's tests inside it, and merges the
// tests' go test -json events with the figures each scenario recorded
// (test/lab/labkit fragments) into $LAB_OUT/results.json:
//
//	{"kernel": "...", "accel": "tcg", "wall_ms": N,
//	 "scenarios": [{"name": "...", "ok": true, "figures": {...}, "log": "...", ...}]}
//
// It prints a summary table and exits 1 when a scenario failed, was skipped
// (in the lab a skip is a failure) or is missing, 2 when the lab itself could
// not run. The suites and the scenarios each must report are listed in
// suites.go.
//
// Usage (from the module root; `make lab` does this):
//
//	go run ./test/lab/cmd/labrun [-suites smoke,ublk] [-out DIR] [-list]
//
// After a run it draws, for every comparison in pairs (plot.go) whose scenarios
// both saved a latency timeline (labkit.SaveTimeline), $LAB_OUT/latency-<pair>.png
// (I/O completion latency over time around the fault, one panel per stack)
// and prints a line comparing srp-mpathd's figures with the kernel stack's.
// A suite whose tests do not exist in the package yet fails its scenarios
// without booting a VM; a test in no suite still refuses the run.
//
// Without running the lab:
//
//	labrun -plot [-out DIR]          draw the plots, print the comparisons
//	labrun -report README.md [-out DIR]
//	                                 rewrite README's lab-results section
//	                                 (between <!-- lab-results:begin --> and
//	                                 <!-- lab-results:end -->) from results.json
//
// Per suite, $LAB_OUT/<suite>/ keeps test.out (raw test output), test.json
// (go test -json), console.log (the guest kernel's warnings, live), dmesg.txt
// (its whole log, after the tests) and vm.log.
//
// Order of effects: fetch the kernel; clear this run's outputs under $LAB_OUT
// (results.json, scenarios/, timelines/, the selected suites' directories,
// bin/); build and check the binaries; then per suite: boot, run, collect,
// and rewrite results.json, so a run cut short still leaves the suites done
// so far; last, draw the plots (latency-*.png are overwritten, not cleared).
package main
