package bench

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// sizeText writes a byte count in MiB, or in GiB or MB when it is a
// round number of them (a target such as 1GiB or 500MB).
func sizeText(b int64) string {
	switch {
	case b > 0 && b%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", b>>30)
	case b > 0 && b%1_000_000 == 0 && b%(1<<20) != 0:
		return fmt.Sprintf("%d MB", b/1_000_000)
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

// soakResults are the headline figures of a soak: bytes per row at the
// end beside a bulk load's (when measured), peak memory, mean CPU.
func soakResults(samples []SoakSample, bulk *bulkFigures) []Result {
	if len(samples) == 0 {
		return nil
	}
	last := samples[len(samples)-1]
	var out []Result
	for _, t := range last.Tables {
		if t.Rows > 0 {
			out = append(out, Result{Name: "bytes per row, streamed (" + t.Table + ")", Rows: int(t.Rows), Value: float64(t.BytesPerRow), Unit: "bytes/row",
				Detail: fmt.Sprintf("%d data files, %.1f rows per file", t.DataFiles, float64(t.Rows)/float64(max(1, t.DataFiles)))})
		}
		if bulk != nil {
			out = append(out, Result{Name: "bytes per row, bulk load (" + t.Table + ")", Rows: bulk.rows[t.Table], Value: bulk.bytesPerRow[t.Table], Unit: "bytes/row",
				Detail: "the same market written in one commit, as k2 load does"})
		}
	}
	var peak int64
	var cpu float64
	n := 0
	for _, s := range samples {
		peak = max(peak, s.RSS)
		if !math.IsNaN(float64(s.CPU)) {
			cpu += float64(s.CPU)
			n++
		}
	}
	out = append(out,
		Result{Name: "k2 up peak RSS (sampled)", Rows: int(last.Tables[0].Rows), Value: float64(peak) / (1 << 20), Unit: "MiB"},
		Result{Name: "k2 up CPU, mean", Rows: int(last.Tables[0].Rows), Value: 100 * cpu / float64(max(1, n)), Unit: "% of a core"},
	)
	return out
}

// judgeSoak judges the targets: every plotted curve flat, the memory under
// its target, and bytes per row near a bulk load's.
func judgeSoak(samples []SoakSample, window time.Duration, o SoakOptions, bulk *bulkFigures) []Check {
	at := make([]float64, len(samples))
	for i, s := range samples {
		at[i] = s.Elapsed
	}
	var out []Check
	for _, p := range soakPanels(o.RSSTarget) {
		for _, c := range p.curves {
			v := make([]float64, len(samples))
			for i, s := range samples {
				v[i] = c.value(s)
			}
			f := judgeFlat(at, v, window.Seconds(), flatTolerance)
			ch := Check{Name: "flat: " + c.name, Status: f.status()}
			switch {
			case f.judged && f.before == 0 && f.last != 0:
				ch.Detail = fmt.Sprintf("0 → %s %s (up from zero)", figure(f.last), p.unit)
			case f.judged:
				ch.Detail = fmt.Sprintf("%s → %s %s (%+.0f%%)", figure(f.before), figure(f.last), p.unit, 100*f.change())
			default:
				ch.Detail = "too few samples to compare two windows"
			}
			out = append(out, ch)
		}
	}
	var peak int64
	for _, s := range samples {
		peak = max(peak, s.RSS)
	}
	st := checkPass
	if peak > o.RSSTarget {
		st = checkFail
	}
	out = append(out, Check{Name: "memory: k2 up RSS", Status: st,
		Detail: fmt.Sprintf("peak %s, target ≤ %s at %g trades/s", sizeText(peak), sizeText(o.RSSTarget), o.Rate)})
	return append(out, judgeStorage(samples, bulk)...)
}

// storageTolerance is how many times a bulk load's bytes per row the
// streamed table may take at the end of a soak.
const storageTolerance = 1.5

// judgeStorage compares each table's bytes per row at the end with a bulk
// load of the same market.
func judgeStorage(samples []SoakSample, bulk *bulkFigures) []Check {
	if bulk == nil || len(samples) == 0 {
		return nil
	}
	var out []Check
	for _, t := range samples[len(samples)-1].Tables {
		b := bulk.bytesPerRow[t.Table]
		if b == 0 || t.Rows == 0 {
			continue
		}
		ratio := float64(t.BytesPerRow) / b
		st := checkPass
		if ratio > storageTolerance {
			st = checkFail
		}
		out = append(out, Check{Name: "storage: " + t.Table + " bytes per row", Status: st,
			Detail: fmt.Sprintf("streamed %.1f, bulk load %.1f (%.2f×, target ≤ %.1f×)", float64(t.BytesPerRow), b, ratio, storageTolerance)})
	}
	return out
}

// flatness compares the mean of a curve's last window with the mean of
// the window before it.
type flatness struct {
	judged       bool
	before, last float64
	tolerance    float64 // the most |change| a flat curve may show
}

func (f flatness) change() float64 {
	if f.before == 0 {
		if f.last == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return (f.last - f.before) / math.Abs(f.before)
}

func (f flatness) status() string {
	switch {
	case !f.judged:
		return checkNotJudged
	case math.Abs(f.change()) <= f.tolerance:
		return checkPass
	}
	return checkFail
}

// judgeFlat takes a curve's values v at times at (seconds, ascending) and
// compares the mean over (end-window, end] with the mean over
// (end-2·window, end-window], end being the last time. NaN values are
// left out; a window without values is not judged.
func judgeFlat(at, v []float64, window, tolerance float64) flatness {
	if len(at) == 0 || window <= 0 {
		return flatness{}
	}
	end := at[len(at)-1]
	var sum [2]float64
	var n [2]int
	for i, t := range at {
		if math.IsNaN(v[i]) {
			continue
		}
		switch {
		case t > end-window:
			sum[1] += v[i]
			n[1]++
		case t > end-2*window:
			sum[0] += v[i]
			n[0]++
		}
	}
	if n[0] == 0 || n[1] == 0 {
		return flatness{}
	}
	return flatness{judged: true, before: sum[0] / float64(n[0]), last: sum[1] / float64(n[1]), tolerance: tolerance}
}

// figure prints a mean to three significant digits, or whole when larger.
func figure(v float64) string {
	if math.Abs(v) >= 100 {
		return groupDigits(int64(math.Round(v)))
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// digits groups thousands: 1,234,567.
var digits = message.NewPrinter(language.English)

// groupDigits writes 1234567 as 1,234,567.
func groupDigits(n int64) string { return digits.Sprint(n) }

// soakColumns are the figures printed for a sample, in the progress line
// and the table at the end. Pairs are trades/quotes.
var soakColumns = []struct {
	head string
	cell func(SoakSample) string
}{
	{"elapsed", func(s SoakSample) string {
		return time.Duration(s.Elapsed * float64(time.Second)).Round(time.Second).String()
	}},
	{"rows", tablePair(func(t SoakTable) string { return groupDigits(t.Rows) })},
	{"files", tablePair(func(t SoakTable) string { return groupDigits(t.DataFiles) })},
	{"snapshots", tablePair(func(t SoakTable) string { return groupDigits(int64(t.Snapshots)) })},
	{"metadata", tablePair(func(t SoakTable) string { return shortBytes(t.MetadataBytes) })},
	{"metadata.json", tablePair(func(t SoakTable) string { return shortBytes(t.MetadataJSON) })},
	{"bytes/row", tablePair(func(t SoakTable) string { return msText(t.BytesPerRow) })},
	{"commit trades", tableCell(0, func(t SoakTable) string { return msPair(t.CommitP50, t.CommitP99) })},
	{"commit quotes", tableCell(1, func(t SoakTable) string { return msPair(t.CommitP50, t.CommitP99) })},
	{"latest-100", func(s SoakSample) string { return msPair(s.LatestP50, s.LatestP99) }},
	{"1m bars", func(s SoakSample) string { return msPair(s.BarsP50, s.BarsP99) }},
	{"cpu", func(s SoakSample) string { return fmt.Sprintf("%.2f", float64(s.CPU)) }},
	{"rss", func(s SoakSample) string { return shortBytes(s.RSS) }},
}

func tableCell(i int, f func(SoakTable) string) func(SoakSample) string {
	return func(s SoakSample) string {
		if i >= len(s.Tables) {
			return "–"
		}
		return f(s.Tables[i])
	}
}

func tablePair(f func(SoakTable) string) func(SoakSample) string {
	return func(s SoakSample) string { return tableCell(0, f)(s) + "/" + tableCell(1, f)(s) }
}

func msPair(p50, p99 Num) string { return msText(p50) + "/" + msText(p99) }

// msText writes a figure to 2–3 significant digits; NaN as a dash.
func msText(v Num) string {
	switch f := float64(v); {
	case math.IsNaN(f):
		return "–"
	case f < 1:
		return strconv.FormatFloat(f, 'f', 2, 64)
	case f < 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	default:
		return strconv.FormatFloat(f, 'f', 0, 64)
	}
}

// shortBytes writes a size in binary units: 512B, 120K, 1.2M, 3.4G.
func shortBytes(b int64) string {
	f := float64(b)
	for _, u := range []string{"B", "K", "M", "G"} {
		if f < 1024 || u == "G" {
			if u == "B" || f >= 100 {
				return fmt.Sprintf("%.0f%s", f, u)
			}
			return fmt.Sprintf("%.1f%s", f, u)
		}
		f /= 1024
	}
	return ""
}

// sampleCells are a sample's figures, column by column; nil gives the
// column heads.
func sampleCells(s *SoakSample) []string {
	out := make([]string, len(soakColumns))
	for i, c := range soakColumns {
		if s == nil {
			out[i] = strings.ToUpper(c.head)
		} else {
			out[i] = c.cell(*s)
		}
	}
	return out
}

// sampleLine is a sample on one line, as the soak goes.
func sampleLine(s SoakSample) string {
	parts := sampleCells(&s)
	for i := 1; i < len(parts); i++ {
		parts[i] = soakColumns[i].head + " " + parts[i]
	}
	return strings.Join(parts, " · ")
}

// printSamples writes a soak's samples as a table, one row per interval.
func (r Report) printSamples(w io.Writer) {
	if len(r.Samples) == 0 {
		return
	}
	fmt.Fprintln(w, "samples (pairs are trades/quotes; commit and query cells p50/p99 in ms, commit estimated from histogram buckets; cpu in cores):")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(sampleCells(nil), "\t"))
	for i := range r.Samples {
		fmt.Fprintln(tw, strings.Join(sampleCells(&r.Samples[i]), "\t"))
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// printChecks writes a soak's targets, pass or fail, and where its plot is.
func (r Report) printChecks(w io.Writer) {
	if r.Note != "" {
		fmt.Fprintf(w, "\n%s\n", r.Note)
	}
	if len(r.Checks) > 0 {
		fmt.Fprintf(w, "\ntargets: %d of %d failed\n", r.Failed(), len(r.Checks))
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		for _, c := range r.Checks {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", strings.ToUpper(c.Status), c.Name, c.Detail)
		}
		tw.Flush()
	}
	if r.Plot != "" {
		fmt.Fprintf(w, "\nplot: %s\n", r.Plot)
	}
}
