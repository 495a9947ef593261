package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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
	r := &runner{root: root, out: *out, cache: *cache, kmeta: *kmeta, goCmd: *goCmd, stderr: stderr}
	res, err := r.runAll(ctx, selected)
	if res != nil {
		res.PrintSummary(stdout, r.out)
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

// runAll runs the selected suites and returns the results, also when it
// stops early with an error.
func (r *runner) runAll(ctx context.Context, selected []Suite) (*Results, error) {
	start := time.Now()
	kver, err := r.fetchKernel(ctx)
	if err != nil {
		return nil, err
	}
	res := &Results{Kernel: kver, Scenarios: []ScenarioResult{}}
	if err := r.clearOutputs(selected); err != nil {
		return nil, err
	}
	bins := map[string]string{}
	for _, s := range selected {
		if bins[s.Package] != "" {
			continue
		}
		r.progressf("building %s", s.Package)
		bin, err := r.build(ctx, s.Package)
		if err != nil {
			return nil, err
		}
		if err := r.checkListed(ctx, bin, s.Package); err != nil {
			return nil, err
		}
		bins[s.Package] = bin
	}
	resultsPath := filepath.Join(r.out, "results.json")
	for _, s := range selected {
		r.progressf("suite %s: booting %s (%s, %d vCPUs, timeout %v)", s.Name, kver, s.Mem, s.CPUs, s.Timeout)
		sr, err := r.runSuite(ctx, s, bins[s.Package])
		if err != nil {
			return res, err
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
	paths := []string{"results.json", labkit.FragmentDir, "bin"}
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
