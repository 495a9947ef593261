package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/srp-mpathd/srp-mpathd/test/lab/labkit"
)

const (
	exitFailed  = 1 // a scenario failed or is missing
	exitLabDown = 2 // the lab itself could not run
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("labrun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", os.Getenv(labkit.EnvOut), "results directory (default $LAB_OUT, else test/lab/out)")
	cache := fs.String("cache", envOr("LAB_CACHE", "/var/cache/srp-mpathd-lab"), "kernel and initramfs cache, outside the repository")
	kmeta := fs.String("kernel", envOr("LAB_KMETA", "linux-image-6.12-amd64"), "Debian kernel meta package to boot")
	only := fs.String("suites", "", "comma-separated suites to run (default all)")
	goCmd := fs.String("go", envOr("GO", "go"), "go command")
	list := fs.Bool("list", false, "list suites and scenarios, run nothing")
	report := fs.String("report", "", "rewrite the lab-results section of this file (README.md) from -out's results.json, run nothing")
	plotOnly := fs.Bool("plot", false, "draw the latency plots and print the comparisons from -out's timelines and results.json, run nothing")
	if err := fs.Parse(args); err != nil {
		return exitLabDown
	}
	if *list {
		for _, s := range suites {
			fmt.Fprintf(stdout, "%s (%s, %s, %d vCPUs, timeout %v)\n", s.Name, s.Package, s.Mem, s.CPUs, s.Timeout)
			for _, e := range s.Scenarios {
				fmt.Fprintf(stdout, "  %-24s %s\n", e.Name, e.Test)
			}
		}
		return 0
	}
	selected, err := selectSuites(*only)
	if err != nil {
		fmt.Fprintln(stderr, "labrun:", err)
		return exitLabDown
	}
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(stderr, "labrun:", err)
		return exitLabDown
	}
	if *out == "" {
		*out = filepath.Join(root, "test/lab/out")
	}
	if *out, err = filepath.Abs(*out); err != nil {
		fmt.Fprintln(stderr, "labrun:", err)
		return exitLabDown
	}
	if *report != "" || *plotOnly {
		return offline(*out, *report, *plotOnly, stdout, stderr)
	}
	r := &runner{root: root, out: *out, cache: *cache, kmeta: *kmeta, goCmd: *goCmd, stderr: stderr}
	res, err := r.runAll(ctx, selected)
	if res != nil {
		res.PrintSummary(stdout, r.out)
		drawn, perr := plotPairs(r.out)
		if perr != nil {
			fmt.Fprintln(stderr, "labrun: plots:", perr)
		}
		res.PrintComparison(stdout, drawn)
	}
	if err != nil {
		fmt.Fprintln(stderr, "labrun:", err)
		return exitLabDown
	}
	if res.Failed() > 0 {
		return exitFailed
	}
	return 0
}

// offline is labrun -report and -plot: work on the results of an earlier
// run in outDir, boot nothing.
func offline(outDir, report string, plots bool, stdout, stderr io.Writer) int {
	resultsPath := filepath.Join(outDir, "results.json")
	res, err := ReadResults(resultsPath)
	if err != nil {
		fmt.Fprintln(stderr, "labrun:", err)
		return exitLabDown
	}
	code := 0
	if plots {
		drawn, err := plotPairs(outDir)
		if err != nil {
			fmt.Fprintln(stderr, "labrun: plots:", err)
			code = exitLabDown
		}
		res.PrintComparison(stdout, drawn)
	}
	if report != "" {
		if err := WriteReport(report, res); err != nil {
			fmt.Fprintln(stderr, "labrun:", err)
			return exitLabDown
		}
		fmt.Fprintf(stdout, "%s: lab results section rewritten from %s (%d scenarios, %d failed)\n", report, resultsPath, len(res.Scenarios), res.Failed())
	}
	return code
}

// runAll runs the selected suites and returns the results, also when it
// stops early with an error.
func (r *runner) runAll(ctx context.Context, selected []Suite) (*Results, error) {
	start := time.Now()
	kver, err := r.fetchKernel(ctx)
	if err != nil {
		return nil, err
	}
	res := &Results{Started: start.UTC().Format(time.RFC3339), Kernel: kver, Scenarios: []ScenarioResult{}}
	if err := r.clearOutputs(selected); err != nil {
		return nil, err
	}
	bins := map[string]string{}
	absent := map[string]bool{} // table tests missing from their binary
	for _, s := range selected {
		if bins[s.Package] != "" {
			continue
		}
		r.progressf("building %s", s.Package)
		bin, err := r.build(ctx, s.Package)
		if err != nil {
			return nil, err
		}
		missing, err := r.checkListed(ctx, bin, s.Package)
		if err != nil {
			return nil, err
		}
		maps.Copy(absent, missing)
		bins[s.Package] = bin
	}
	resultsPath := filepath.Join(r.out, "results.json")
	for _, s := range selected {
		var sr *suiteRun
		if allAbsent(s, absent) {
			r.progressf("suite %s: not run, its tests do not exist in %s", s.Name, s.Package)
			sr = absentRun(s)
		} else {
			r.progressf("suite %s: booting %s (%s, %d vCPUs, timeout %v)", s.Name, kver, s.Mem, s.CPUs, s.Timeout)
			if sr, err = r.runSuite(ctx, s, bins[s.Package]); err != nil {
				return res, err
			}
			markAbsent(sr.tests, s, func(test string) bool { return absent[test] })
		}
		frags, ferr := labkit.ReadFragments(r.out)
		if ferr != nil {
			r.progressf("suite %s: %v", s.Name, ferr)
		}
		res.Scenarios = append(res.Scenarios, mergeSuite(s, sr.tests, frags, sr.vm)...)
		if len(sr.vm.KernelProblems) > 0 {
			if res.KernelProblems == nil {
				res.KernelProblems = map[string][]string{}
			}
			res.KernelProblems[s.Name] = sr.vm.KernelProblems
		}
		if res.Accel == "" {
			res.Accel = sr.accel
		}
		res.WallMS = time.Since(start).Milliseconds()
		r.progressf("suite %s: done in %v (vm-run exit %d)", s.Name, time.Duration(sr.wallMS)*time.Millisecond, sr.vm.ExitCode)
		if err := res.WriteFile(resultsPath); err != nil {
			return res, err
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	frags, _ := labkit.ReadFragments(r.out)
	res.Scenarios = append(res.Scenarios, strayScenarios(suites, frags)...)
	res.WallMS = time.Since(start).Milliseconds()
	return res, res.WriteFile(resultsPath)
}

// clearOutputs removes what an earlier run left for this run's suites, so
// no stale fragment can pass for a new result. Nothing else under $LAB_OUT
// is touched: it may be a directory the user also keeps other things in.
func (r *runner) clearOutputs(selected []Suite) error {
	paths := []string{"results.json", labkit.FragmentDir, labkit.TimelineDir, labkit.DaemonLogDir, "bin"}
	for _, s := range selected {
		paths = append(paths, s.Name)
	}
	for _, p := range paths {
		if err := os.RemoveAll(filepath.Join(r.out, p)); err != nil {
			return err
		}
	}
	return os.MkdirAll(filepath.Join(r.out, labkit.FragmentDir), 0o755)
}

func selectSuites(only string) ([]Suite, error) {
	if only == "" {
		return suites, nil
	}
	var out []Suite
	for _, name := range strings.Split(only, ",") {
		i := slices.IndexFunc(suites, func(s Suite) bool { return s.Name == name })
		if i < 0 {
			var names []string
			for _, s := range suites {
				names = append(names, s.Name)
			}
			return nil, fmt.Errorf("no suite %q (have %s)", name, strings.Join(names, ", "))
		}
		out = append(out, suites[i])
	}
	return out, nil
}

// moduleRoot finds the directory of go.mod from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod in the working directory or above; run from the module")
		}
		dir = parent
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
