package bench

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// durationSeries is one table's k2_iceberg_write_duration_seconds as
// /metrics shows it: cumulative counts for le 0.01, 0.05, 0.1, 0.2, +Inf.
func durationSeries(table string, counts ...int) string {
	var b strings.Builder
	for i, le := range []string{"0.01", "0.05", "0.1", "0.2", "+Inf"} {
		fmt.Fprintf(&b, "k2_iceberg_write_duration_seconds_bucket{table=%q,le=%q} %d\n", table, le, counts[i])
	}
	fmt.Fprintf(&b, "k2_iceberg_write_duration_seconds_sum{table=%q} 1\nk2_iceberg_write_duration_seconds_count{table=%q} %d\n", table, table, counts[4])
	return b.String()
}

// Two scrapes of a k2 up's /metrics, an interval apart: the quotes series
// and the other metrics must not disturb the trades figures.
var (
	scrapeBefore = "# TYPE k2_iceberg_write_duration_seconds histogram\n" +
		durationSeries("quotes", 5, 5, 5, 5, 5) + durationSeries("trades", 10, 20, 20, 20, 20) +
		"# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\n"
	scrapeAfter = "# TYPE k2_iceberg_write_duration_seconds histogram\n" +
		durationSeries("quotes", 5, 5, 5, 5, 5) + durationSeries("trades", 10, 30, 70, 110, 120) +
		"# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 42.5\n" +
		"# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 2.5e+08\n"
)

func mustScrape(t *testing.T, text string) metricSet {
	t.Helper()
	fams, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return metricSet{families: fams}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// The interval's commits are the bucket deltas between two scrapes (here:
// 0 ≤ 10ms, 10 in (10, 50] ms, 40 in (50, 100], 40 in (100, 200], 10
// above 200 ms: 100 commits), and quantiles interpolate inside a bucket
// as Prometheus's histogram_quantile does.
func TestQuantileFromHistogramDeltas(t *testing.T) {
	before, after := mustScrape(t, scrapeBefore), mustScrape(t, scrapeAfter)
	h1, ok := after.histogram("k2_iceberg_write_duration_seconds", "table", "trades")
	if !ok {
		t.Fatal("no trades histogram")
	}
	h0, _ := before.histogram("k2_iceberg_write_duration_seconds", "table", "trades")
	d := h1.since(h0)
	if d.count != 100 {
		t.Fatalf("interval has %v commits, want 100", d.count)
	}
	for _, c := range []struct{ q, want float64 }{
		{0.5, 0.1},                    // rank 50: the top of (50, 100] ms
		{0.3, 0.05 + 0.05*(30-10)/40}, // rank 30: half way through (50, 100]
		{0.1, 0.05},                   // rank 10: the top of (10, 50] ms
		{0.05, 0.01 + 0.04*(5.0/10)},  // rank 5: half way through (10, 50]
		{0.8, 0.1 + 0.1*(80-50)/40},   // rank 80: three quarters through (100, 200]
		{0.99, 0.2},                   // rank 99 is above the last bound: that bound
	} {
		if got := d.quantile(c.q); !near(got, c.want) {
			t.Errorf("p%g = %v s, want %v", 100*c.q, got, c.want)
		}
	}

	// The quotes table committed nothing in the interval: no figure.
	q1, _ := after.histogram("k2_iceberg_write_duration_seconds", "table", "quotes")
	q0, _ := before.histogram("k2_iceberg_write_duration_seconds", "table", "quotes")
	if got := q1.since(q0).quantile(0.5); !math.IsNaN(got) {
		t.Errorf("no commits gave p50 %v, want NaN", got)
	}
	// The first bucket starts at zero.
	if got := q1.quantile(0.5); !near(got, 0.005) {
		t.Errorf("p50 of 5 commits ≤ 10 ms = %v, want 0.005", got)
	}
	// A process that restarted counts from zero, not below it.
	if got := h0.since(h1); got.count != h0.count {
		t.Errorf("after a reset the interval holds %v commits, want %v", got.count, h0.count)
	}
	if _, ok := after.histogram("k2_iceberg_write_duration_seconds", "table", "reference_data"); ok {
		t.Error("found a histogram for a table that has none")
	}

	c0, _ := before.value("process_cpu_seconds_total")
	c1, _ := after.value("process_cpu_seconds_total")
	rss, ok := after.value("process_resident_memory_bytes")
	if c1-c0 != 30 || !ok || rss != 250e6 {
		t.Errorf("cpu %v → %v, rss %v", c0, c1, rss)
	}
}
