package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/test/lab/labkit"
)

// synthTimeline is a load of ~300 IOPS for 30 s with a fault at 5 s: most
// I/Os take about a millisecond, the ones caught by the fault up to stall,
// a failed one at 6 s, the path restored at 20 s.
func synthTimeline(name string, stall time.Duration) *labkit.TimelineFile {
	tl := &labkit.TimelineFile{
		Name: name, Duration: 30 * time.Second, MaxLatency: stall, MaxGap: 40 * time.Millisecond,
		Markers: []labkit.FileMarker{{Name: labkit.MarkFault, At: 5 * time.Second}, {Name: labkit.MarkRestore, At: 20 * time.Second}},
	}
	const every = 3 * time.Millisecond
	for at := time.Duration(0); at < tl.Duration; at += every {
		lat := uint32(800 + (at/every%7)*150) // µs
		s := labkit.IOSample{At: at, LatencyUS: lat}
		if at/every%3 == 0 {
			s.Flags |= labkit.IOWrite
		}
		tl.Samples = append(tl.Samples, s)
	}
	tl.Samples = append(tl.Samples,
		labkit.IOSample{At: 5*time.Second + stall, LatencyUS: uint32(stall / time.Microsecond)},
		labkit.IOSample{At: 6 * time.Second, LatencyUS: 50_000, Flags: labkit.IOWrite | labkit.IOFailed})
	return tl
}

// TestRenderLatencyPlot draws two synthetic timelines and checks the PNG:
// it decodes, has the documented size, and is a plot, not a blank page:
// many pixels in each stack's colour and in the fault marker's, and both
// panels' halves inked.
func TestRenderLatencyPlot(t *testing.T) {
	var b bytes.Buffer
	series := []Series{
		{oursLabel, oursColor, synthTimeline("e2e-linkdown", 90*time.Millisecond)},
		{kernelLabel, kernelColor, synthTimeline("kernel-linkdown", 15*time.Second)},
	}
	if err := RenderLatencyPlot(&b, "test", series); err != nil {
		t.Fatal(err)
	}
	if dump := os.Getenv("LABRUN_PLOT_DUMP"); dump != "" {
		os.WriteFile(dump, b.Bytes(), 0o644)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	w, h := PlotSize(2)
	if got := img.Bounds(); got != image.Rect(0, 0, w, h) {
		t.Fatalf("size %v, want %dx%d", got, w, h)
	}
	// count counts the pixels of rows [y0, y1) within a small distance of
	// c: lines and glyphs are antialiased.
	count := func(c color.RGBA, y0, y1 int) int {
		const tolerance = 40
		near := func(a, b uint8) bool { return max(a, b)-min(a, b) <= tolerance }
		n := 0
		for y := y0; y < y1; y++ {
			for x := 0; x < w; x++ {
				p := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
				if near(p.R, c.R) && near(p.G, c.G) && near(p.B, c.B) {
					n++
				}
			}
		}
		return n
	}
	mid := plotHeaderPx + plotPadPx + plotPanelPx
	const minPoints = 500 // thousands of samples, each a few pixels
	if n := count(oursColor, 0, mid); n < minPoints {
		t.Errorf("top panel: %d pixels of srp-mpathd's colour", n)
	}
	if n := count(kernelColor, mid, h); n < minPoints {
		t.Errorf("bottom panel: %d pixels of the kernel's colour", n)
	}
	if n := count(oursColor, mid, h) + count(kernelColor, 0, mid); n != 0 {
		t.Errorf("%d pixels of a stack's colour in the other's panel", n)
	}
	const minLine = plotPanelPx / 3 // a dashed line down the panel, partly under points
	for _, half := range [][2]int{{0, mid}, {mid, h}} {
		if n := count(faultColor, half[0], half[1]); n < minLine {
			t.Errorf("rows %v: %d pixels of the fault marker, want a dashed line (%d+)", half, n, minLine)
		}
		if n := count(restoreColor, half[0], half[1]); n < minLine {
			t.Errorf("rows %v: %d pixels of the restore marker, want a dashed line (%d+)", half, n, minLine)
		}
		if n := count(failedColor, half[0], half[1]); n == 0 {
			t.Errorf("rows %v: the failed I/O is not drawn", half)
		}
	}
}

func TestRenderLatencyPlotRejectsNothing(t *testing.T) {
	if err := RenderLatencyPlot(&bytes.Buffer{}, "x", nil); err == nil {
		t.Error("a plot of no series succeeded")
	}
}

// TestPlotPairs: a pair is drawn only when both timelines exist; a bad
// timeline is an error and does not stop the other pairs.
func TestPlotPairs(t *testing.T) {
	out := t.TempDir()
	dir := filepath.Join(out, labkit.TimelineDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	st := labkit.IOStats{Start: time.Unix(1, 0), End: time.Unix(31, 0)}
	for _, name := range []string{"e2e-linkdown", "kernel-linkdown", "e2e-blackhole"} {
		st.Timeline = labkit.IOTimeline{Start: st.Start, Samples: []labkit.IOSample{{At: time.Second, LatencyUS: 900}, {At: 2 * time.Second, LatencyUS: 1500}}}
		if err := labkit.WriteTimeline(filepath.Join(dir, name+".csv"), name, st, labkit.Marker{Name: labkit.MarkFault, At: time.Unix(2, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "kernel-blackhole.csv"), []byte("junk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := plotPairs(out)
	if err == nil || !strings.Contains(err.Error(), "kernel-blackhole.csv") {
		t.Errorf("err = %v, want the bad kernel-blackhole timeline", err)
	}
	if len(got) != 1 || got[0].Pair.Name != "linkdown" || got[0].Path != filepath.Join(out, "latency-linkdown.png") {
		t.Fatalf("plotted %+v, want latency-linkdown.png only", got)
	}
	if _, err := os.Stat(filepath.Join(out, "latency-demo.png")); err == nil {
		t.Error("latency-demo.png drawn without the demo's timeline")
	}
	f, err := os.Open(got[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("%s: %v", got[0].Path, err)
	}
}

func TestPrintComparison(t *testing.T) {
	r := &Results{Scenarios: []ScenarioResult{
		{Name: "kernel-linkdown", Figures: map[string]float64{"stall_ms": 15359.434, "max_io_ms": 15359.434, "max_gap_ms": 69.7, "io_errors": 0, "verify_errors": 0}},
		{Name: "demo", Figures: map[string]float64{"stall_ms": 86.2, "max_io_ms": 86.2, "max_gap_ms": 32.1, "errors": 0, "verify_errors": 0}},
		{Name: "e2e-blackhole", Figures: map[string]float64{"max_io_ms": 133}},
		// Before stall_ms was the Stall: it was the gap.
		{Name: "kernel-blackhole", Figures: map[string]float64{"stall_ms": 23.3, "max_io_ms": 88286}},
	}}
	var b bytes.Buffer
	r.PrintComparison(&b, []plotted{{Pair: pairs[0], Path: "/out/latency-demo.png"}})
	want := "demo vs kernel-linkdown: stall 86 ms vs 15,359 ms (178× shorter); longest single I/O 86 ms vs 15,359 ms; longest gap 32 ms vs 70 ms; I/O/verify errors 0/0 vs 0/0\n" +
		"  plot: /out/latency-demo.png\n" +
		"e2e-blackhole vs kernel-blackhole: stall - vs 88,286 ms; longest single I/O 133 ms vs 88,286 ms; longest gap - vs 23 ms; I/O/verify errors -/- vs -/-\n"
	if b.String() != want {
		t.Errorf("comparison:\n%s\nwant\n%s", b.String(), want)
	}
}

func TestThousands(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 7: "7", 0.185: "0.185", 15359.434: "15,359", 1234567: "1,234,567", -1: "-1", 999.6: "1,000", -0.2: "-0.2"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%v) = %q, want %q", v, got, want)
		}
	}
}
