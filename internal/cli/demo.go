package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/srp-mpathd/srp-mpathd/internal/daemon"
)

// defaultDemoDuration is the demo's run time unless --duration says.
const defaultDemoDuration = 30 * time.Second

// demoOpts are the demo command's flags.
type demoOpts struct {
	sim      bool
	depth    int
	latency  time.Duration
	duration time.Duration
	asJSON   bool
	logLevel string
}

// demoJSON is `demo --json`: the scenarios plus the totals.
type demoJSON struct {
	Scenarios    []demoScenarioJSON `json:"scenarios"`
	TotalIOs     uint64             `json:"total_ios"`
	FailedIOs    uint64             `json:"failed_ios"`
	ErrorSamples []string           `json:"error_samples,omitempty"`
}

type demoScenarioJSON struct {
	Name      string `json:"name"`
	StallMs   int64  `json:"stall_ms"`
	Errors    int    `json:"errors"`
	IOs       int    `json:"ios"`
	Device    string `json:"device"`
	Path      string `json:"path"`
	Recovered bool   `json:"recovered"`
}

func newDemoCmd() *cobra.Command {
	var o demoOpts
	cmd := &cobra.Command{
		Use:   "demo --sim",
		Short: "Run the daemon over a simulated fabric, inject faults and measure the I/O stalls",
		Long: `Run the whole daemon over the simulated fabric with software SRP targets
(2 targets x 2 paths) and a verified random read/write workload on every device
standing in for md (ublk is not needed). On a schedule it injects a link down,
a silent blackhole and a target-side disconnect (DREQ), each on a path carrying
I/O, and measures the stall: the longest gap between completed I/Os of the
affected device after the fault. A live table is shown while it runs, then a
report. Exits 0 only if no I/O failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !o.sim {
				return &UsageError{Err: fmt.Errorf("demo needs --sim (the only fabric the demo runs on)")}
			}
			if o.duration < daemon.DemoMinDuration {
				return &UsageError{Err: fmt.Errorf("--duration %v: want at least %v", o.duration, daemon.DemoMinDuration)}
			}
			level, err := parseLogLevel(o.logLevel)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			w := cmd.OutOrStdout()
			do := daemon.DemoOptions{
				Duration: o.duration, Depth: o.depth, LinkLatency: o.latency,
				Logger: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level})),
			}
			if !o.asJSON {
				clear := isTerminal(w)
				do.Progress = func(p daemon.DemoProgress) {
					if clear {
						fmt.Fprint(w, ansiClearScreen)
					}
					printDemoProgress(w, p)
				}
			}
			rep, err := daemon.RunDemo(ctx, do)
			if err != nil {
				return err
			}
			if o.asJSON {
				out := demoJSON{TotalIOs: rep.TotalIOs, FailedIOs: rep.FailedIOs, ErrorSamples: rep.ErrorSamples, Scenarios: []demoScenarioJSON{}}
				for _, s := range rep.Scenarios {
					out.Scenarios = append(out.Scenarios, demoScenarioJSON{Name: s.Name, StallMs: s.StallMs, Errors: s.Errors, IOs: s.IOs, Device: s.Device, Path: s.Path, Recovered: s.Recovered})
				}
				if err := printJSON(w, out); err != nil {
					return err
				}
			} else {
				printDemoReport(w, rep)
			}
			if !rep.OK() {
				return fmt.Errorf("%d of %d I/O failed", rep.FailedIOs, rep.TotalIOs)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.sim, "sim", false, "run over the simulated fabric (required)")
	f.DurationVar(&o.duration, "duration", defaultDemoDuration, "how long to run (split evenly between the scenarios)")
	f.BoolVar(&o.asJSON, "json", false, "print only the final report, as JSON")
	// A light load for tests that run the demo in a testing/synctest bubble.
	f.IntVar(&o.depth, "depth", 0, "workload I/O in flight per device (default 16)")
	f.DurationVar(&o.latency, "link-latency", 0, "one-way latency of the simulated links (default 50µs)")
	_ = f.MarkHidden("depth")
	_ = f.MarkHidden("link-latency")
	f.StringVar(&o.logLevel, "log-level", "warn", "daemon log level on stderr: debug, info, warn or error")
	return cmd
}

// ansiClearScreen moves the cursor home and clears the screen, so the live
// table redraws in place on a terminal.
const ansiClearScreen = "\x1b[H\x1b[2J"

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// printDemoProgress prints one refresh of the live table.
func printDemoProgress(w io.Writer, p daemon.DemoProgress) {
	fmt.Fprintf(w, "\n[%5.1fs] scenario %s\n", p.Elapsed.Seconds(), p.Scenario)
	t := newTable(w, "DEVICE", "PATH", "STATE", "IN STATE", "INFLIGHT", "EWMA", "COMPLETIONS", "I/O DONE", "FAILED")
	for _, d := range p.Devices {
		for _, g := range d.Groups {
			for _, pa := range g.Paths {
				t.row(d.Name, pa.ID, pa.State, humanSeconds(pa.SecondsInState), fmt.Sprint(pa.InFlight),
					fmt.Sprintf("%.0fus", pa.LatencyEWMAUs), fmt.Sprint(pa.Completions), fmt.Sprint(d.IOCompleted), fmt.Sprint(d.IOFailed))
			}
		}
	}
	_ = t.flush()
}

// printDemoReport prints the final report.
func printDemoReport(w io.Writer, rep daemon.DemoReport) {
	fmt.Fprintf(w, "\nsrp-mpathd demo report (%.1fs, %d I/O, %d failed)\n", float64(rep.DurationMs)/1000, rep.TotalIOs, rep.FailedIOs)
	t := newTable(w, "SCENARIO", "DEVICE", "PATH", "STALL", "I/O AFTER FAULT", "ERRORS", "PATH AFTER", "RECOVERED")
	for _, s := range rep.Scenarios {
		t.row(s.Name, s.Device, s.Path, fmt.Sprintf("%d ms", s.StallMs), fmt.Sprint(s.IOs), fmt.Sprint(s.Errors), s.PathState, fmt.Sprint(s.Recovered))
	}
	_ = t.flush()
	for _, e := range rep.ErrorSamples {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}
