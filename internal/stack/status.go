package stack

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/record"
)

// status writes a short line every StatusEvery: what the feed produces,
// what reaches the lake, how far behind the sink is, when the last commit
// landed, what the tables hold and where to look next. It is what a person
// watching k2 up on a terminal reads; the per-commit lines it replaces
// stay in logs that are collected (--log-format json, --log-file).
func (st *Stack) status(ctx context.Context) {
	every := st.parts.StatusEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var prev statusSample
	prev.take(st)
	fmt.Fprintf(st.parts.Status, "%s · status every %s · health http://%s/health · metrics http://%s/metrics\n",
		st.role, every, st.HTTPAddr(), st.HTTPAddr())
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var cur statusSample
		cur.take(st)
		fmt.Fprintln(st.parts.Status, cur.line(st, prev))
		prev = cur
	}
}

// statusSample is what the status line compares between two ticks.
type statusSample struct {
	at             time.Time
	trades, quotes int64   // produced by the feed
	written        float64 // rows committed
}

func (s *statusSample) take(st *Stack) {
	s.at = time.Now()
	if st.feed != nil && st.feed.produced != nil {
		s.trades, s.quotes = st.feed.produced()
	}
	s.written = ops.Sum(st.metrics, "k2_iceberg_rows_written_total")
}

func (s *statusSample) line(st *Stack, prev statusSample) string {
	secs := s.at.Sub(prev.at).Seconds()
	rate := func(now, before float64) string { return count(int64(math.Round((now - before) / secs))) }
	parts := []string{s.at.Format(time.TimeOnly)}
	if st.feed != nil {
		parts = append(parts, fmt.Sprintf("feed %s %s trades/s %s quotes/s", st.feed.name,
			rate(float64(s.trades), float64(prev.trades)), rate(float64(s.quotes), float64(prev.quotes))))
	}
	if st.sink != nil {
		last := "no commit yet"
		var newest float64
		for _, t := range record.TableNames() {
			newest = max(newest, ops.Sum(st.metrics, "k2_iceberg_last_commit_timestamp_seconds", "table", t))
		}
		if newest > 0 {
			ago := time.Since(time.UnixMilli(int64(newest * 1000))).Round(100 * time.Millisecond)
			last = "last commit " + ago.String() + " ago"
		}
		parts = append(parts, fmt.Sprintf("lake +%s rows/s, lag %s, %s", rate(s.written, prev.written),
			count(int64(ops.Sum(st.metrics, "k2_kafka_consumer_lag_messages"))), last))
	}
	if st.lake != nil {
		for _, t := range record.TableNames() {
			parts = append(parts, fmt.Sprintf("%s %s rows/%s files", t,
				count(int64(ops.Sum(st.metrics, "k2_iceberg_table_rows", "table", t))),
				count(int64(ops.Sum(st.metrics, "k2_iceberg_table_data_files", "table", t)))))
		}
	}
	return strings.Join(parts, " · ")
}

// count writes n with thousands separators: 1,234,567.
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
