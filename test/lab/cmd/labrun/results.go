package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/srp-mpathd/srp-mpathd/test/lab/labkit"
)

// Results is results.json.
type Results struct {
	// Started is when the run began, RFC 3339 in UTC.
	Started   string           `json:"started,omitempty"`
	Kernel    string           `json:"kernel"`
	Accel     string           `json:"accel,omitempty"`
	WallMS    int64            `json:"wall_ms"`
	Scenarios []ScenarioResult `json:"scenarios"`
	// KernelProblems lists, per suite, the console lines where the guest
	// kernel warned, oopsed or found a hung task. They fail nothing by
	// themselves; they are what to read first when a scenario misbehaves.
	KernelProblems map[string][]string `json:"kernel_problems,omitempty"`
}

// ScenarioResult is one scenario in results.json.
type ScenarioResult struct {
	Name      string             `json:"name"`
	OK        bool               `json:"ok"`
	Figures   map[string]float64 `json:"figures"`
	Log       string             `json:"log"`
	Suite     string             `json:"suite"`
	Test      string             `json:"test"`
	ElapsedMS int64              `json:"elapsed_ms"`
	// Reason says in one line why a scenario is not ok; empty when ok.
	Reason string `json:"reason,omitempty"`
}

// VMOutcome is how the VM of a suite ended.
type VMOutcome struct {
	ExitCode int    // vm-run.sh's: the test binary's status, 124 timeout, 125 VM failure
	Detail   string // vm-run's own messages and the console tail, for the log
	Timeout  time.Duration
	// KernelProblems are the console lines kernelProblems found.
	KernelProblems []string
}

// kernelProblemRE matches the console lines that mean the kernel itself
// is unhappy: BUG/WARNING/Oops reports, panics, hung-task and RCU stall
// reports, lockdep splats.
var kernelProblemRE = regexp.MustCompile(`(BUG: |WARNING: |Oops|Kernel panic|INFO: task .* blocked|rcu: INFO: |possible circular locking|general protection fault)`)

// maxKernelProblems bounds the lines kept per suite; the console log has all.
const maxKernelProblems = 20

// kernelProblems picks the kernelProblemRE lines out of a console log.
func kernelProblems(console string) []string {
	var out []string
	for _, line := range strings.Split(console, "\n") {
		if kernelProblemRE.MatchString(line) {
			out = append(out, strings.TrimSpace(line))
			if len(out) == maxKernelProblems {
				break
			}
		}
	}
	return out
}

const (
	exitVMTimeout = 124 // vm-run.sh: --timeout expired
	exitVMFailed  = 125 // vm-run.sh: the VM stopped before the command finished
)

// maxLogBytes bounds a scenario's log in results.json; the full output stays
// in the suite's directory.
const maxLogBytes = 16 << 10

// mergeSuite turns what one VM left behind (test events, fragments, how the
// VM ended) into the suite's scenario results, in table order. A scenario is
// ok only when its test passed and it recorded a final, ok fragment: in the
// lab a skipped test is a failure, because the lab is where it must run.
func mergeSuite(s Suite, ts *TestStream, frags map[string]*labkit.Fragment, vm VMOutcome) []ScenarioResult {
	var out []ScenarioResult
	for _, e := range s.Scenarios {
		r := ScenarioResult{Name: e.Name, Suite: s.Name, Test: e.Test, Figures: map[string]float64{}}
		rec := ts.Tests[e.Test]
		if rec == nil {
			rec = &TestRecord{}
		}
		f := frags[e.Name]
		if f != nil {
			maps.Copy(r.Figures, f.Figures)
		}
		r.ElapsedMS = int64(rec.Elapsed * 1000)
		switch {
		case rec.Outcome == OutcomeFail:
			r.Reason = "test failed"
		case rec.Outcome == OutcomeAbsent:
			r.Reason = fmt.Sprintf("%s does not exist in %s (not in its -test.list); write it or drop it from suites.go", e.Test, orDash(s.Package))
		case rec.Outcome == OutcomeSkip:
			r.Reason = "test skipped (a skip is a failure in the lab): " + lastLine(rec.Output.String())
		case rec.Outcome != OutcomePass:
			r.Reason = "test " + rec.Outcome.String() + ": " + vmEnd(vm)
		case f == nil:
			r.Reason = fmt.Sprintf("%s passed but recorded no scenario %q (labkit.Begin/Record)", e.Test, e.Name)
		case f.Test != e.Test:
			r.Reason = fmt.Sprintf("scenario %q was recorded by %s, the suite table says %s", e.Name, f.Test, e.Test)
		case !f.OK || !f.Final:
			r.Reason = "the scenario's fragment is not final and ok"
		default:
			r.OK = true
		}
		var log strings.Builder
		if r.Reason != "" {
			log.WriteString("FAILED: " + r.Reason + "\n")
		}
		if f != nil {
			for _, n := range f.Notes {
				log.WriteString("note: " + n + "\n")
			}
		}
		log.WriteString(rec.Output.String())
		for _, l := range vm.KernelProblems {
			log.WriteString("kernel (suite console): " + l + "\n")
		}
		if !r.OK && rec.Outcome != OutcomePass && rec.Outcome != OutcomeFail && rec.Outcome != OutcomeSkip && rec.Outcome != OutcomeAbsent {
			log.WriteString(ts.Package.String())
			log.WriteString(vm.Detail)
		}
		r.Log = tail(log.String(), maxLogBytes)
		out = append(out, r)
	}
	return out
}

// strayScenarios reports fragments that no suite expects: a scenario added
// to a test but not to the suite table would otherwise vanish silently.
func strayScenarios(all []Suite, frags map[string]*labkit.Fragment) []ScenarioResult {
	known := map[string]bool{}
	for _, s := range all {
		for _, e := range s.Scenarios {
			known[e.Name] = true
		}
	}
	var out []ScenarioResult
	for _, name := range slices.Sorted(maps.Keys(frags)) {
		if known[name] {
			continue
		}
		f := frags[name]
		reason := fmt.Sprintf("scenario %q (recorded by %s) is in no suite of test/lab/cmd/labrun/suites.go", name, f.Test)
		out = append(out, ScenarioResult{Name: name, Test: f.Test, Figures: f.Figures, Reason: reason, Log: "FAILED: " + reason + "\n"})
	}
	return out
}

func vmEnd(vm VMOutcome) string {
	switch vm.ExitCode {
	case exitVMTimeout:
		return fmt.Sprintf("the VM timed out after %v", vm.Timeout)
	case exitVMFailed:
		return "the VM stopped before the tests finished (kernel panic or qemu failure; see the log)"
	case 0, 1:
		return "the test binary ended without reporting it (not selected by -test.run?)"
	}
	return fmt.Sprintf("the test binary exited with status %d", vm.ExitCode)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" && !strings.HasPrefix(l, "--- SKIP") {
			return l
		}
	}
	return ""
}

// tail keeps the last n bytes of s, cut at a line start, marking the cut.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "[... earlier output cut; see the suite's directory ...]\n" + s
}

// Failed counts the scenarios that are not ok.
func (r *Results) Failed() int {
	n := 0
	for _, s := range r.Scenarios {
		if !s.OK {
			n++
		}
	}
	return n
}

// WriteFile stores r as path, atomically.
func (r *Results) WriteFile(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	return nil
}

// PrintSummary writes the human table.
func (r *Results) PrintSummary(w io.Writer, outDir string) {
	fmt.Fprintf(w, "\nlab: kernel %s, accel %s, %d scenarios, %d failed, wall %s\n",
		r.Kernel, orDash(r.Accel), len(r.Scenarios), r.Failed(), (time.Duration(r.WallMS) * time.Millisecond).Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tSUITE\tRESULT\tTIME\tFIGURES")
	for _, s := range r.Scenarios {
		res := "ok"
		if !s.OK {
			res = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, orDash(s.Suite), res,
			(time.Duration(s.ElapsedMS) * time.Millisecond).Round(100*time.Millisecond), figures(s.Figures))
	}
	tw.Flush()
	for _, s := range r.Scenarios {
		if !s.OK {
			fmt.Fprintf(w, "  %s: %s\n", s.Name, s.Reason)
		}
	}
	for _, suite := range slices.Sorted(maps.Keys(r.KernelProblems)) {
		lines := r.KernelProblems[suite]
		fmt.Fprintf(w, "  kernel problems in suite %s (%d lines, see %s/console.log): %s\n", suite, len(lines), suite, lines[0])
	}
	fmt.Fprintf(w, "results: %s\n", filepath.Join(outDir, "results.json"))
}

func figures(m map[string]float64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%s", k, formatFigure(m[k])))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// formatFigure prints whole numbers and large values without a fraction,
// small ones with three significant digits (a ratio of 0.185).
func formatFigure(v float64) string {
	const wholeAbove = 100
	if v == float64(int64(v)) || v >= wholeAbove || v <= -wholeAbove {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
