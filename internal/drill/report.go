package drill

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteMarkdown writes the report: a summary table, then a table per
// drill with a row per fault.
func WriteMarkdown(w io.Writer, r *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# K2 fault drills\n\n")
	fmt.Fprintf(&b, "Run %s, %s in all: %s.\n\n", r.Started.UTC().Format(time.RFC3339), r.Took.Round(time.Second), verdict(r))
	fmt.Fprintf(&b, "Each drill runs an installation of its own, each K2 role a process, with %d trades a second of %d symbols "+
		"flowing through it while the faults are injected. *Detected* is how long after the injection the fault showed "+
		"(a failed /ready, a refused start, a failed write, a failed query); *RTO* runs from the restart, or from the start "+
		"of the runbook's repair, to every process ready and the trades table storing rows again (and the API answering, "+
		"where it runs); *produced* counts the trades the broker acknowledged, *in lake* the distinct ids of them stored, "+
		"*duplicated* the copies stored more than once; *cut by broker* the trades the broker acknowledged and then lost "+
		"itself with a damaged file of its data directory before the sink read them (gone from Kafka; counted apart from *lost*, "+
		"which are K2's).\n\n", trafficRate, len(trafficSymbols))
	b.WriteString("## Summary\n\n")
	b.WriteString("| drill | result | faults | worst RTO (target) | produced | in lake | lost | duplicated | cut by broker | took | runbook |\n")
	b.WriteString("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, res := range r.Results {
		var produced, inLake, lost, dup, cut int64
		var worst, target time.Duration
		for _, row := range res.Rows {
			produced += row.Produced
			inLake += row.InLake
			lost += row.Lost
			dup += row.Duplicated
			cut += row.BrokerCut
			if row.RTO > worst {
				worst, target = row.RTO, row.Target
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %d | %d | %d | %d | %d | %s | [%s](%s) |\n", res.Drill.Name, resultWord(res), len(res.Rows),
			rto(worst, target), produced, inLake, lost, dup, cut, res.Took.Round(100*time.Millisecond), base(res.Drill.Runbook), res.Drill.Runbook)
	}
	for _, res := range r.Results {
		fmt.Fprintf(&b, "\n## %s: %s\n\n", res.Drill.Name, resultWord(res))
		fmt.Fprintf(&b, "%s. Runbook: `%s`. Family: %s.\n\n", res.Drill.Summary, res.Drill.Runbook, res.Drill.Family)
		if res.Err != nil {
			fmt.Fprintf(&b, "**%s:** %s\n\n", map[bool]string{true: "Skipped", false: "Error"}[res.Skipped], cell(res.Err.Error()))
		}
		if len(res.Rows) == 0 {
			continue
		}
		b.WriteString("| fault | injected at | detected | recovered at | RTO (target) | produced | in lake | lost | duplicated | cut by broker | pass | notes |\n")
		b.WriteString("|---|---|---:|---|---|---:|---:|---:|---:|---:|---|---|\n")
		for _, row := range res.Rows {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %d | %d | %d | %d | %d | %s | %s |\n", cell(row.Fault), clock(row.InjectedAt),
				after(row.InjectedAt, row.DetectedAt), clock(row.RecoveredAt), rto(row.RTO, row.Target),
				row.Produced, row.InLake, row.Lost, row.Duplicated, row.BrokerCut, map[bool]string{true: "yes", false: "**no**"}[row.Pass], cell(row.Notes))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteSummary writes a line per drill and the verdict, for a terminal.
func WriteSummary(w io.Writer, r *Report) error {
	var b strings.Builder
	for _, res := range r.Results {
		var produced, lost, dup, cut int64
		var worst, target time.Duration
		for _, row := range res.Rows {
			produced += row.Produced
			lost += row.Lost
			dup += row.Duplicated
			cut += row.BrokerCut
			if row.RTO > worst {
				worst, target = row.RTO, row.Target
			}
		}
		fmt.Fprintf(&b, "%-22s %-7s RTO %-18s produced %6d  lost %d  duplicated %d  cut by broker %d  (%s)%s\n", res.Drill.Name, resultWord(res),
			rto(worst, target), produced, lost, dup, cut, res.Took.Round(100*time.Millisecond), errSuffix(res.Err))
	}
	fmt.Fprintf(&b, "%s in %s\n", verdict(r), r.Took.Round(time.Second))
	_, err := io.WriteString(w, b.String())
	return err
}

func verdict(r *Report) string {
	var pass, fail, skip int
	for _, res := range r.Results {
		switch {
		case res.Skipped:
			skip++
		case res.Pass():
			pass++
		default:
			fail++
		}
	}
	s := fmt.Sprintf("%d of %d drills passed", pass, len(r.Results))
	if fail > 0 {
		s += fmt.Sprintf(", %d failed", fail)
	}
	if skip > 0 {
		s += fmt.Sprintf(", %d skipped", skip)
	}
	return s
}

func resultWord(r Result) string {
	switch {
	case r.Skipped:
		return "skipped"
	case r.Pass():
		return "PASS"
	}
	return "FAIL"
}

func rto(d, target time.Duration) string {
	if d == 0 && target == 0 {
		return "–"
	}
	s := d.Round(time.Millisecond).String()
	if d == 0 {
		s = "not recovered"
	}
	if target > 0 {
		s += " (≤ " + target.String() + ")"
	}
	return s
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("15:04:05.000")
}

// after is how long after the injection t was.
func after(from, t time.Time) string {
	if t.IsZero() || from.IsZero() {
		return "–"
	}
	return "+" + t.Sub(from).Round(time.Millisecond).String()
}

func base(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

// cell makes text safe in a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}
