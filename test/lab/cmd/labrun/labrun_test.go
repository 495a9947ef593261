package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/test/lab/labkit"
)

func loadEvents(t *testing.T, name string) *TestStream {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ts, err := ParseTestEvents(f)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestParseTestEvents(t *testing.T) {
	ts := loadEvents(t, "timeout.json")
	want := map[string]Outcome{
		"TestLabSmoke":         OutcomePass,
		"TestUblkFsVerify":     OutcomeFail, // its subtest passed; the parent's verdict counts
		"TestUblkNullIOPS":     OutcomeSkip,
		"TestUblkRecoverKill9": OutcomeRunning,
	}
	if len(ts.Tests) != len(want) {
		t.Errorf("tests = %d, want %d", len(ts.Tests), len(want))
	}
	for name, o := range want {
		rec := ts.Tests[name]
		if rec == nil || rec.Outcome != o {
			t.Errorf("%s: %+v, want outcome %v", name, rec, o)
		}
	}
	if got := ts.Tests["TestUblkFsVerify"].Output.String(); !strings.Contains(got, "mkfs.ext4 done") {
		t.Errorf("a subtest's output is not in its parent's log:\n%s", got)
	}
	if ts.Tests["TestLabSmoke"].Elapsed != 5.61 {
		t.Errorf("elapsed = %v", ts.Tests["TestLabSmoke"].Elapsed)
	}
	if !strings.Contains(ts.Package.String(), "the VM died here") {
		t.Errorf("package output lost: %q", ts.Package.String())
	}
}

func TestMergeSuite(t *testing.T) {
	ts := loadEvents(t, "timeout.json")
	s := Suite{Name: "ublk", Timeout: 10 * time.Minute, Scenarios: []Expect{
		{Name: "lab-smoke", Test: "TestLabSmoke"},
		{Name: "ublk-fs-verify", Test: "TestUblkFsVerify"},
		{Name: "ublk-null-iops", Test: "TestUblkNullIOPS"},
		{Name: "ublk-recover-kill9", Test: "TestUblkRecoverKill9"},
		{Name: "ublk-md-recover", Test: "TestUblkMDRecover"},
	}}
	frags := map[string]*labkit.Fragment{
		"lab-smoke":          {Name: "lab-smoke", Test: "TestLabSmoke", OK: true, Final: true, Figures: map[string]float64{"boot_ms": 4100}},
		"ublk-fs-verify":     {Name: "ublk-fs-verify", Test: "TestUblkFsVerify", Final: true, Figures: map[string]float64{"errors": 3}},
		"ublk-recover-kill9": {Name: "ublk-recover-kill9", Test: "TestUblkRecoverKill9", OK: true, Figures: map[string]float64{"recover_ms": 800}},
	}
	got := mergeSuite(s, ts, frags, VMOutcome{ExitCode: exitVMTimeout, Timeout: 10 * time.Minute, Detail: "vm-run: timed out after 600s\n"})
	want := []struct {
		ok     bool
		reason string // regexp
	}{
		{true, `^$`},
		{false, `^test failed$`},
		{false, `^test skipped .*null_blk is not available$`},
		{false, `^test did not finish: the VM timed out after 10m0s$`},
		{false, `^test not run: the VM timed out`},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d results, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Name != s.Scenarios[i].Name || g.Suite != "ublk" || g.OK != w.ok || !regexp.MustCompile(w.reason).MatchString(g.Reason) {
			t.Errorf("%d: %s ok=%v reason=%q; want ok=%v reason ~ %q", i, g.Name, g.OK, g.Reason, w.ok, w.reason)
		}
	}
	if got[0].Figures["boot_ms"] != 4100 || got[0].ElapsedMS != 5610 {
		t.Errorf("lab-smoke: figures %v elapsed %d", got[0].Figures, got[0].ElapsedMS)
	}
	// Figures measured before the VM died are kept, and the log says why.
	if got[3].Figures["recover_ms"] != 800 || !strings.Contains(got[3].Log, "killed the server") || !strings.Contains(got[3].Log, "timed out after 600s") {
		t.Errorf("ublk-recover-kill9: figures %v log:\n%s", got[3].Figures, got[3].Log)
	}
	if got[4].Figures == nil {
		t.Error("a scenario without a fragment has nil figures; results.json wants {}")
	}
}

func TestMergeSuiteFragmentChecks(t *testing.T) {
	ts := &TestStream{Tests: map[string]*TestRecord{"TestA": {Outcome: OutcomePass}, "TestB": {Outcome: OutcomePass}, "TestC": {Outcome: OutcomePass}}}
	s := Suite{Name: "x", Scenarios: []Expect{{Name: "a", Test: "TestA"}, {Name: "b", Test: "TestB"}, {Name: "c", Test: "TestC"}}}
	frags := map[string]*labkit.Fragment{
		"b": {Name: "b", Test: "TestOther", OK: true, Final: true},
		"c": {Name: "c", Test: "TestC", OK: true, Final: false},
	}
	got := mergeSuite(s, ts, frags, VMOutcome{})
	for i, want := range []string{"recorded no scenario", "was recorded by TestOther", "not final"} {
		if got[i].OK || !strings.Contains(got[i].Reason, want) {
			t.Errorf("%s: ok=%v reason=%q, want not ok, %q", got[i].Name, got[i].OK, got[i].Reason, want)
		}
	}
}

func TestStrayScenarios(t *testing.T) {
	frags := map[string]*labkit.Fragment{
		"lab-smoke": {Name: "lab-smoke", Test: "TestLabSmoke"},
		"new-thing": {Name: "new-thing", Test: "TestNewThing", OK: true, Final: true},
	}
	got := strayScenarios(suites, frags)
	if len(got) != 1 || got[0].Name != "new-thing" || got[0].OK || !strings.Contains(got[0].Reason, "in no suite") {
		t.Errorf("stray = %+v", got)
	}
}

func TestSuiteTable(t *testing.T) {
	names := map[string]bool{}
	for _, s := range suites {
		if s.Name == "" || s.Package == "" || s.Mem == "" || s.CPUs < 1 || s.Timeout <= testTimeoutMargin || len(s.Scenarios) == 0 {
			t.Errorf("suite %+v is incomplete", s)
		}
		for _, e := range s.Scenarios {
			if !labkit.ValidName(e.Name) || !strings.HasPrefix(e.Test, "Test") {
				t.Errorf("suite %s: scenario %+v", s.Name, e)
			}
			if names[e.Name] {
				t.Errorf("scenario %s is listed twice", e.Name)
			}
			names[e.Name] = true
		}
		if re := regexp.MustCompile(testRunPattern(s)); !re.MatchString(s.Scenarios[0].Test) || re.MatchString(s.Scenarios[0].Test+"X") {
			t.Errorf("suite %s: -test.run %s", s.Name, re)
		}
	}
}

func TestSelectSuites(t *testing.T) {
	all, err := selectSuites("")
	if err != nil || len(all) != len(suites) {
		t.Errorf("all: %d suites, %v", len(all), err)
	}
	if _, err := selectSuites("smoke,nope"); err == nil || !strings.Contains(err.Error(), `no suite "nope"`) {
		t.Errorf("unknown suite: %v", err)
	}
}

func TestProgressWriter(t *testing.T) {
	var b bytes.Buffer
	p := &progressWriter{w: &b, prefix: "lab[x]: "}
	in := "\x16=== RUN   TestA\n    a_test.go:1: noise\n\x16--- PASS: TestA (0.1" + "0s)\n\x16=== RUN   TestB\n"
	// Split writes anywhere, as a pipe may.
	for i := 0; i < len(in); i += 7 {
		if _, err := p.Write([]byte(in[i:min(i+7, len(in))])); err != nil {
			t.Fatal(err)
		}
	}
	want := "lab[x]: === RUN   TestA\nlab[x]: --- PASS: TestA (0.10s)\nlab[x]: === RUN   TestB\n"
	if b.String() != want {
		t.Errorf("progress:\n%q\nwant\n%q", b.String(), want)
	}
}

func TestResultsSummaryAndFile(t *testing.T) {
	r := &Results{Kernel: "6.12.117+deb12-amd64", Accel: "tcg", WallMS: 61_000, Scenarios: []ScenarioResult{
		{Name: "lab-smoke", Suite: "smoke", OK: true, Figures: map[string]float64{"boot_ms": 4100, "ratio": 0.25, "iops": 5643.7}},
		{Name: "ublk-fs-verify", Suite: "ublk", Reason: "test failed", Figures: map[string]float64{}},
	}}
	var b bytes.Buffer
	r.PrintSummary(&b, "/out")
	for _, want := range []string{"2 scenarios, 1 failed, wall 1m1s", "boot_ms=4100 iops=5644 ratio=0.25", "ublk-fs-verify: test failed", "/out/results.json"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
	path := filepath.Join(t.TempDir(), "results.json")
	if err := r.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"kernel": "6.12.117+deb12-amd64"`, `"scenarios": [`, `"ok": false`, `"figures": {}`, `"log": ""`} {
		if !bytes.Contains(raw, []byte(key)) {
			t.Errorf("results.json lacks %s:\n%s", key, raw)
		}
	}
}

func TestTail(t *testing.T) {
	s := strings.Repeat("line\n", 100)
	got := tail(s, 52)
	if !strings.HasPrefix(got, "[... earlier output cut") || strings.Count(got, "line\n") != 10 {
		t.Errorf("tail = %q", got)
	}
	if tail("short", 10) != "short" {
		t.Error("tail cut a short string")
	}
}

func TestKernelProblems(t *testing.T) {
	console := strings.Join([]string{
		"[    1.000000] Run /init as init process",
		"[   12.345678] WARNING: CPU: 1 PID: 300 at drivers/block/ublk_drv.c:1234 ublk_ch_release+0x1/0x2 [ublk_drv]",
		"[   99.000000] INFO: task mdadm:412 blocked for more than 120 seconds.",
		"[  100.000000] md/raid1:md0: active with 2 out of 2 mirrors",
		"[  101.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008",
	}, "\n")
	got := kernelProblems(console)
	if len(got) != 3 || !strings.Contains(got[0], "ublk_ch_release") || !strings.Contains(got[1], "blocked for more") || !strings.HasPrefix(got[2], "[  101") {
		t.Errorf("kernelProblems = %q", got)
	}
	if got := kernelProblems(strings.Repeat("WARNING: x\n", 3*maxKernelProblems)); len(got) != maxKernelProblems {
		t.Errorf("kept %d lines, want the first %d", len(got), maxKernelProblems)
	}

	ts := &TestStream{Tests: map[string]*TestRecord{"TestA": {Outcome: OutcomePass}}}
	s := Suite{Name: "x", Scenarios: []Expect{{Name: "a", Test: "TestA"}}}
	frags := map[string]*labkit.Fragment{"a": {Name: "a", Test: "TestA", OK: true, Final: true}}
	res := mergeSuite(s, ts, frags, VMOutcome{KernelProblems: got[:1]})
	if !res[0].OK || !strings.Contains(res[0].Log, "kernel (suite console): [   12.345678] WARNING") {
		t.Errorf("a kernel warning must show in the log and fail nothing: ok=%v log=%q", res[0].OK, res[0].Log)
	}
}

// TestListedCheck: a test in no suite refuses the run; a suite's test the
// binary lacks (TestDemo before it is written) is returned, not an error.
func TestListedCheck(t *testing.T) {
	const pkg = "./test/lab/scenarios"
	var all []string
	for _, s := range suites {
		for _, e := range s.Scenarios {
			if s.Package == pkg && e.Test != "TestDemo" {
				all = append(all, e.Test)
			}
		}
	}
	list := strings.Join(all, "\n") + "\nBenchmarkX\nExampleY\n"
	absent, err := listedCheck(list, pkg)
	if err != nil || len(absent) != 1 || !absent["TestDemo"] {
		t.Errorf("absent %v, err %v; want TestDemo only", absent, err)
	}
	if _, err := listedCheck(list+"TestDemo\nTestStray\n", pkg); err == nil || !strings.Contains(err.Error(), "TestStray") {
		t.Errorf("a test in no suite: err = %v", err)
	}
}

func TestAbsentSuiteFailsAlone(t *testing.T) {
	s := Suite{Name: "demo", Package: "./test/lab/scenarios", Scenarios: []Expect{{Name: "demo", Test: "TestDemo"}}}
	if !allAbsent(s, map[string]bool{"TestDemo": true}) || allAbsent(s, map[string]bool{}) {
		t.Error("allAbsent")
	}
	sr := absentRun(s)
	got := mergeSuite(s, sr.tests, map[string]*labkit.Fragment{}, sr.vm)
	if len(got) != 1 || got[0].OK || !strings.Contains(got[0].Reason, "TestDemo does not exist in ./test/lab/scenarios") {
		t.Errorf("absent test: %+v", got)
	}
	if strings.Contains(got[0].Log, "timed out") || strings.Contains(got[0].Log, "-test.run") {
		t.Errorf("the log blames the VM for a missing test:\n%s", got[0].Log)
	}

	// In a suite that did run, only the missing test's scenario fails.
	two := Suite{Name: "x", Package: "p", Scenarios: []Expect{{Name: "a", Test: "TestA"}, {Name: "b", Test: "TestB"}}}
	ts := &TestStream{Tests: map[string]*TestRecord{"TestA": {Outcome: OutcomePass}}}
	markAbsent(ts, two, func(test string) bool { return test == "TestB" })
	frags := map[string]*labkit.Fragment{"a": {Name: "a", Test: "TestA", OK: true, Final: true}}
	res := mergeSuite(two, ts, frags, VMOutcome{})
	if !res[0].OK || res[1].OK || !strings.Contains(res[1].Reason, "TestB does not exist") {
		t.Errorf("results %+v", res)
	}
}
