package main

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/srp-mpathd/srp-mpathd/test/lab/labkit"
)

// Pair is a comparison the runner draws when both scenarios left a
// timeline: srp-mpathd's scenario and the kernel baseline under the same
// load and fault. Its plot is $LAB_OUT/latency-<Name>.png.
type Pair struct {
	Name   string
	Ours   string // srp-mpathd's scenario
	Kernel string // the kernel stack's scenario
}

// pairs is every comparison, in print order.
var pairs = []Pair{
	{Name: "demo", Ours: "demo", Kernel: "kernel-linkdown"},
	{Name: "linkdown", Ours: "e2e-linkdown", Kernel: "kernel-linkdown"},
	{Name: "blackhole", Ours: "e2e-blackhole", Kernel: "kernel-blackhole"},
}

// Stack labels for the panels.
const (
	oursLabel   = "srp-mpathd"
	kernelLabel = "kernel ib_srp + dm-multipath"
)

// The plot's geometry, in pixels at plotDPI: one panel per stack under a
// header line.
const (
	plotDPI         = 96
	plotWidthPx     = 1200
	plotPanelPx     = 380
	plotHeaderPx    = 40
	plotPadPx       = 8
	glyphRadiusPx   = 2
	failedRadiusPx  = 3
	headerFontPts   = 16
	panelTitlePts   = 13
	minPlotLatency  = 0.01 // ms: a floor for the log scale (samples are whole µs)
	markerLineWidth = 2
)

var (
	oursColor    = color.RGBA{R: 0, G: 114, B: 178, A: 255} // blue
	kernelColor  = color.RGBA{R: 213, G: 94, B: 0, A: 255}  // vermillion
	failedColor  = color.RGBA{R: 150, G: 0, B: 200, A: 255} // purple
	faultColor   = color.RGBA{R: 200, G: 0, B: 0, A: 255}
	restoreColor = color.RGBA{R: 0, G: 150, B: 60, A: 255}
)

// Series is one stack's timeline in a plot.
type Series struct {
	Label string // the stack
	Color color.Color
	TL    *labkit.TimelineFile
}

// px converts pixels at plotDPI to plot lengths.
func px(n float64) vg.Length { return vg.Length(n) * vg.Inch / plotDPI }

// PlotSize is the PNG size of a plot of n series.
func PlotSize(n int) (w, h int) {
	return plotWidthPx, plotHeaderPx + n*plotPanelPx + 2*plotPadPx
}

// RenderLatencyPlot draws the I/O completion latency (ms, log scale) of each
// series over time relative to its fault marker (labkit's TimelineFile.Zero),
// one panel per series on shared axes, with the fault and restore marked,
// and writes it to w as PNG.
func RenderLatencyPlot(w io.Writer, title string, series []Series) error {
	if len(series) == 0 {
		return errors.New("plot: no series")
	}
	xMin, xMax := math.Inf(1), math.Inf(-1)
	yMin, yMax := math.Inf(1), minPlotLatency*10
	for _, s := range series {
		z := s.TL.Zero()
		xMin = math.Min(xMin, secs(-z))
		xMax = math.Max(xMax, secs(max(s.TL.Duration, lastAt(s.TL))-z))
		for _, smp := range s.TL.Samples {
			yMin, yMax = math.Min(yMin, latMS(smp)), math.Max(yMax, latMS(smp))
		}
	}
	// Whole decades, so both ends carry a labelled tick.
	yMin = math.Pow(10, math.Floor(math.Log10(math.Max(math.Min(yMin, yMax/10), minPlotLatency))))
	yMax = math.Pow(10, math.Ceil(math.Log10(yMax)))

	plots := make([][]*plot.Plot, len(series))
	for i, s := range series {
		p, err := panel(s, xMin, xMax, yMin, yMax, i == 0)
		if err != nil {
			return err
		}
		plots[i] = []*plot.Plot{p}
	}
	wPx, hPx := PlotSize(len(series))
	img := vgimg.NewWith(vgimg.UseWH(px(float64(wPx)), px(float64(hPx))), vgimg.UseDPI(plotDPI), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	head := draw.TextStyle{
		Color: color.Black, Font: font.From(plot.DefaultFont, headerFontPts), Handler: plot.DefaultTextHandler,
		XAlign: draw.XCenter, YAlign: draw.YTop,
	}
	dc.FillText(head, vg.Point{X: dc.Center().X, Y: dc.Max.Y - px(plotPadPx)}, title)
	tiles := draw.Tiles{Rows: len(series), Cols: 1, PadTop: px(plotHeaderPx + plotPadPx), PadBottom: px(plotPadPx),
		PadLeft: px(plotPadPx), PadRight: px(2 * plotPadPx), PadY: px(plotPadPx)}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

// panel is one series' plot.
func panel(s Series, xMin, xMax, yMin, yMax float64, legend bool) (*plot.Plot, error) {
	p := plot.New()
	tl := s.TL
	p.Title.Text = fmt.Sprintf("%s (%s): stall %s (longest single I/O %s, longest gap %s); %d I/Os, %d errors, %d verify errors",
		s.Label, tl.Name, fmtDur(tl.Stall()), fmtDur(tl.MaxLatency), fmtDur(tl.MaxGap), len(tl.Samples), tl.Errors, tl.VerifyErrors)
	if tl.Dropped > 0 {
		p.Title.Text += fmt.Sprintf(" (%d I/Os past the timeline's capacity not shown)", tl.Dropped)
	}
	p.Title.TextStyle.Font.Size = panelTitlePts
	p.X.Label.Text = "time since the fault (s)"
	if _, ok := tl.Marker(labkit.MarkFault); !ok {
		p.X.Label.Text = "time since the load started (s): no fault marker"
	}
	// No axis label: gonum places a vertical label's box at the arithmetic
	// middle of the range, near the top on a log scale, and pads the panel
	// for it. The tick labels carry the unit instead.
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = decadeTicks(yMin, yMax)
	p.X.Min, p.X.Max = xMin, xMax
	p.X.Tick.Marker = secondTicks(xMin, xMax)
	p.Y.Min, p.Y.Max = yMin, yMax
	p.Add(plotter.NewGrid())

	z := tl.Zero()
	// Markers first: the points stay on top of them.
	for _, m := range tl.Markers {
		c := color.Color(color.Gray{Y: 100})
		switch m.Name {
		case labkit.MarkFault:
			c = faultColor
		case labkit.MarkRestore:
			c = restoreColor
		}
		x := secs(m.At - z)
		ln, err := plotter.NewLine(plotter.XYs{{X: x, Y: yMin}, {X: x, Y: yMax}})
		if err != nil {
			return nil, err
		}
		ln.LineStyle = draw.LineStyle{Color: c, Width: px(markerLineWidth), Dashes: []vg.Length{px(6), px(4)}}
		p.Add(ln)
		if legend {
			p.Legend.Add(m.Name, ln)
		}
	}
	var ok, failed plotter.XYs
	for _, smp := range tl.Samples {
		pt := plotter.XY{X: secs(smp.At - z), Y: math.Max(latMS(smp), yMin)}
		if smp.Flags&labkit.IOFailed != 0 {
			failed = append(failed, pt)
		} else {
			ok = append(ok, pt)
		}
	}
	sc, err := plotter.NewScatter(ok)
	if err != nil {
		return nil, err
	}
	sc.GlyphStyle = draw.GlyphStyle{Color: s.Color, Radius: px(glyphRadiusPx), Shape: draw.CircleGlyph{}}
	p.Add(sc)
	if legend {
		p.Legend.Add("completed I/O", sc)
	}
	if len(failed) > 0 {
		fs, err := plotter.NewScatter(failed)
		if err != nil {
			return nil, err
		}
		fs.GlyphStyle = draw.GlyphStyle{Color: failedColor, Radius: px(failedRadiusPx), Shape: draw.BoxGlyph{}}
		p.Add(fs)
		p.Legend.Add("failed I/O", fs)
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs = px(plotPadPx)
	return p, nil
}

// decadeTicks labels every decade from lo to hi (both powers of ten) and
// puts minor ticks at 2..9 times each. gonum's LogTicks rounds log10 of an
// exact power of ten the wrong way at times (a tick past the axis, a
// missing label at its end).
func decadeTicks(lo, hi float64) plot.ConstantTicks {
	const minorPerDecade = 9
	first, last := int(math.Round(math.Log10(lo))), int(math.Round(math.Log10(hi)))
	var ticks plot.ConstantTicks
	for e := first; e <= last; e++ {
		v := math.Pow10(e)
		ticks = append(ticks, plot.Tick{Value: v, Label: msLabel(v)})
		if e == last {
			break
		}
		for m := 2; m <= minorPerDecade; m++ {
			ticks = append(ticks, plot.Tick{Value: v * float64(m)})
		}
	}
	return ticks
}

// secondTicks labels round seconds from lo to hi, zero (the fault) among
// them, at a step of 1, 2 or 5 times a power of ten that gives at most
// maxSecondTicks labels.
func secondTicks(lo, hi float64) plot.ConstantTicks {
	const maxSecondTicks = 12
	step := 1.0
	for i := 0; (hi-lo)/step > maxSecondTicks; i++ {
		step *= []float64{2, 2.5, 2}[i%3] // 1, 2, 5, 10, 20, 50, ...
	}
	var ticks plot.ConstantTicks
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	return ticks
}

// msLabel labels a decade of milliseconds: 0.1 ms, 10 ms, 1 s, 100 s.
func msLabel(v float64) string {
	const msPerSecond = 1000
	if v >= msPerSecond {
		return strconv.FormatFloat(v/msPerSecond, 'f', -1, 64) + " s"
	}
	return strconv.FormatFloat(v, 'f', -1, 64) + " ms"
}

func secs(d time.Duration) float64 { return d.Seconds() }

func latMS(s labkit.IOSample) float64 { return float64(s.LatencyUS) / 1000 }

func lastAt(tl *labkit.TimelineFile) time.Duration {
	if n := len(tl.Samples); n > 0 {
		return tl.Samples[n-1].At
	}
	return 0
}

// fmtDur prints a wait the way the tables do: ms below 10 s, else seconds.
func fmtDur(d time.Duration) string {
	const secondsFrom = 10 * time.Second
	if d >= secondsFrom {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%s ms", thousands(float64(d.Microseconds())/1000))
}

// plotted is one pair whose plot was written.
type plotted struct {
	Pair Pair
	Path string
}

// plotPairs writes latency-<pair>.png under outDir for every pair whose two
// timelines exist there. A pair with a timeline missing is skipped; a
// timeline that does not decode or a plot that cannot be written is an
// error (joined), and the other pairs are still drawn.
func plotPairs(outDir string) ([]plotted, error) {
	var done []plotted
	var errs []error
	for _, pr := range pairs {
		ours, err1 := labkit.ReadTimeline(timelinePath(outDir, pr.Ours))
		kern, err2 := labkit.ReadTimeline(timelinePath(outDir, pr.Kernel))
		if errors.Is(err1, fs.ErrNotExist) || errors.Is(err2, fs.ErrNotExist) {
			continue
		}
		if err := errors.Join(err1, err2); err != nil {
			errs = append(errs, err)
			continue
		}
		path := filepath.Join(outDir, "latency-"+pr.Name+".png")
		title := fmt.Sprintf("I/O completion latency (log scale) around the fault: %s vs %s", pr.Ours, pr.Kernel)
		if err := writePlot(path, title, []Series{{oursLabel, oursColor, ours}, {kernelLabel, kernelColor, kern}}); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, plotted{Pair: pr, Path: path})
	}
	return done, errors.Join(errs...)
}

func timelinePath(outDir, scenario string) string {
	return filepath.Join(outDir, labkit.TimelineDir, scenario+".csv")
}

// writePlot renders into path atomically.
func writePlot(path, title string, series []Series) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	err = RenderLatencyPlot(f, title, series)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}

// PrintComparison writes, for every pair with both scenarios in r, one line
// comparing srp-mpathd's wait figures with the kernel's, and the plot's path
// when one was drawn.
func (r *Results) PrintComparison(w io.Writer, drawn []plotted) {
	byName := map[string]*ScenarioResult{}
	for i := range r.Scenarios {
		byName[r.Scenarios[i].Name] = &r.Scenarios[i]
	}
	for _, pr := range pairs {
		ours, kern := byName[pr.Ours], byName[pr.Kernel]
		if ours == nil || kern == nil {
			continue
		}
		o, k := waitFigures(ours.Figures), waitFigures(kern.Figures)
		o.kernelStall, o.hasKernelStall = k.stall, k.hasStall
		fmt.Fprintf(w, "%s vs %s: stall %s vs %s%s; longest single I/O %s vs %s; longest gap %s vs %s; I/O/verify errors %s/%s vs %s/%s\n",
			pr.Ours, pr.Kernel, msCell(o.stall, o.hasStall), msCell(k.stall, k.hasStall), o.shorter(),
			msCell(o.maxIO, o.hasMaxIO), msCell(k.maxIO, k.hasMaxIO), msCell(o.gap, o.hasGap), msCell(k.gap, k.hasGap),
			fig(ours, "errors", "io_errors"), fig(ours, "verify_errors"), fig(kern, "errors", "io_errors"), fig(kern, "verify_errors"))
		for _, d := range drawn {
			if d.Pair == pr {
				fmt.Fprintf(w, "  plot: %s\n", d.Path)
			}
		}
	}
}

// msCell prints a figure in ms, "-" when the scenario did not record it.
func msCell(v float64, ok bool) string {
	if !ok {
		return "-"
	}
	return thousands(v) + " ms"
}

// fig prints the first of names the scenario recorded.
func fig(s *ScenarioResult, names ...string) string {
	for _, n := range names {
		if v, ok := s.Figures[n]; ok {
			return formatFigure(v)
		}
	}
	return "-"
}

// thousands prints v rounded to a whole number with thousands separators
// (15,359), or with three significant digits below 10 (0.185).
func thousands(v float64) string {
	const wholeFrom = 10
	if math.Abs(v) < wholeFrom && v != math.Trunc(v) {
		return fmt.Sprintf("%.3g", v)
	}
	s := fmt.Sprintf("%.0f", math.Abs(v))
	var b strings.Builder
	if v < 0 && s != "0" {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
