package bench

import (
	"fmt"
	"image/color"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// curve is one line of a soak plot, and one flatness check.
type curve struct {
	name   string // in the checks
	legend string // in its panel
	value  func(SoakSample) float64
	dashed bool // quotes' lines, so that one lying on trades' still shows
}

// panel is one small chart of the soak plot.
type panel struct {
	title, unit string
	curves      []curve
	target      float64 // a dashed line at this value (0: none)
}

// soakPanels are the figures a soak follows over time; each curve is
// drawn and judged for flatness. The RSS panel shows the target.
func soakPanels(rssTarget int64) []panel {
	perTable := func(what, legend string, f func(SoakTable) float64) []curve {
		var out []curve
		for i, name := range soakTables {
			out = append(out, curve{name: name + " " + what, legend: name + legend, dashed: i > 0, value: func(s SoakSample) float64 {
				if i >= len(s.Tables) {
					return math.NaN()
				}
				return f(s.Tables[i])
			}})
		}
		return out
	}
	toMiB := func(b int64) float64 { return float64(b) / (1 << 20) }
	return []panel{
		{title: "Data files", unit: "files", curves: perTable("data files", "", func(t SoakTable) float64 { return float64(t.DataFiles) })},
		{title: "Snapshots", unit: "snapshots", curves: perTable("snapshots", "", func(t SoakTable) float64 { return float64(t.Snapshots) })},
		{title: "Metadata (MiB)", unit: "MiB", curves: append(
			perTable("metadata bytes (all of metadata/)", " metadata/", func(t SoakTable) float64 { return toMiB(t.MetadataBytes) }),
			perTable("current metadata.json bytes", " metadata.json", func(t SoakTable) float64 { return toMiB(t.MetadataJSON) })...)},
		{title: "Bytes per row", unit: "bytes", curves: perTable("bytes per row", "", func(t SoakTable) float64 { return float64(t.BytesPerRow) })},
		{title: "Commit duration (ms)", unit: "ms", curves: append(
			perTable("commit p50", " p50", func(t SoakTable) float64 { return float64(t.CommitP50) }),
			perTable("commit p99", " p99", func(t SoakTable) float64 { return float64(t.CommitP99) })...)},
		{title: "Query latency (ms)", unit: "ms", curves: []curve{
			{name: "latest 100 trades p50", legend: "latest 100 p50", value: func(s SoakSample) float64 { return float64(s.LatestP50) }},
			{name: "latest 100 trades p99", legend: "latest 100 p99", value: func(s SoakSample) float64 { return float64(s.LatestP99) }},
			{name: "1m bars of a symbol-day p50", legend: "1m bars p50", value: func(s SoakSample) float64 { return float64(s.BarsP50) }},
			{name: "1m bars of a symbol-day p99", legend: "1m bars p99", value: func(s SoakSample) float64 { return float64(s.BarsP99) }},
		}},
		{title: "k2 up CPU (cores)", unit: "cores", curves: []curve{{name: "k2 up CPU", legend: "k2 up", value: func(s SoakSample) float64 { return float64(s.CPU) }}}},
		{title: "k2 up RSS (MiB)", unit: "MiB", curves: []curve{{name: "k2 up RSS", legend: "k2 up", value: func(s SoakSample) float64 { return toMiB(s.RSS) }}}, target: toMiB(rssTarget)},
	}
}

// writeSoakPlot draws every panel over time, two to a row, into a PNG;
// the RSS panel also shows the target.
func writeSoakPlot(path, title string, samples []SoakSample, rssTarget int64) error {
	panels := soakPanels(rssTarget)
	xUnit, xScale := "minutes", 60.0
	if n := len(samples); n > 0 && samples[n-1].Elapsed < 5*60 {
		xUnit, xScale = "seconds", 1
	}
	const cols = 2
	rows := (len(panels) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.title
		p.X.Label.Text = xUnit + " since k2 up started"
		p.Y.Label.Text = pn.unit
		p.Legend.Top, p.Legend.Left = true, true
		p.Legend.TextStyle.Font.Size = vg.Points(9)
		p.Add(plotter.NewGrid())
		for j, c := range pn.curves {
			var xys plotter.XYs
			for _, s := range samples {
				if v := c.value(s); !math.IsNaN(v) && !math.IsInf(v, 0) {
					xys = append(xys, plotter.XY{X: s.Elapsed / xScale, Y: v})
				}
			}
			if len(xys) == 0 {
				continue
			}
			l, pts, err := plotter.NewLinePoints(xys)
			if err != nil {
				return err
			}
			l.Color, l.Width = plotutil.Color(j), vg.Points(1.5)
			if c.dashed {
				l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
			}
			pts.Color, pts.Radius = plotutil.Color(j), vg.Points(1.5)
			p.Add(l, pts)
			p.Legend.Add(c.legend, l)
		}
		if pn.target > 0 && len(samples) > 0 {
			l, err := plotter.NewLine(plotter.XYs{{X: 0, Y: pn.target}, {X: samples[len(samples)-1].Elapsed / xScale, Y: pn.target}})
			if err != nil {
				return err
			}
			l.Color, l.Dashes = color.RGBA{R: 200, A: 255}, []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(l)
			p.Legend.Add("target", l)
		}
		// Counts and latencies start at zero, and the legend gets room
		// above the lines.
		if math.IsInf(p.Y.Min, 0) || math.IsInf(p.Y.Max, 0) {
			p.Y.Min, p.Y.Max = 0, 1
		}
		p.Y.Min = math.Min(0, p.Y.Min)
		p.Y.Max += 0.3 * (p.Y.Max - p.Y.Min)
		if p.Y.Max == p.Y.Min {
			p.Y.Max = p.Y.Min + 1
		}
		p.X.Min = 0
		grid[i/cols][i%cols] = p
	}

	const dpi = 96
	w, h := vg.Length(1400)*vg.Inch/dpi, vg.Length(360*rows+50)*vg.Inch/dpi
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi))
	dc := draw.New(img)
	heading := plot.New().Title.TextStyle
	heading.Font.Size = vg.Points(14)
	dc.FillText(heading, vg.Point{X: w / 2, Y: h - vg.Points(8)}, title)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadTop: vg.Points(36), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(16), PadX: vg.Points(24), PadY: vg.Points(16)}
	canvases := plot.Align(grid, tiles, dc)
	for i := range grid {
		for j, p := range grid[i] {
			p.Draw(canvases[i][j])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// plotTitle heads the soak plot.
func plotTitle(o SoakOptions, machine Machine) string {
	return fmt.Sprintf("k2 bench soak · k2 up --feed synth --rate %g for %s, a sample every %s · %s, %d cores", o.Rate, o.For, o.Every, machine.CPU, machine.Cores)
}
