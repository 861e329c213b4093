package api

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The pulse reads counters into rates, step by step, from this process's
// registry and another role's /metrics over HTTP: a restarted process's
// counters, a dead-letter topic's records, a role that does not answer
// and the worst degradation of several sinks are each told right.
func TestPulseReadsRatesAcrossProcesses(t *testing.T) {
	local := prometheus.NewRegistry()
	produced := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "k2_kafka_messages_produced_total"}, []string{"client", "topic"})
	stored := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "k2_iceberg_rows_written_total"}, []string{"table"})
	breaker := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "k2_circuit_breaker_state"}, []string{"breaker_name"})
	opened := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "k2_circuit_breaker_opened_total"}, []string{"breaker_name"})
	feedBreaker := prometheus.NewGauge(prometheus.GaugeOpts{Name: "k2_binance_circuit_breaker_state"})
	localLevel := prometheus.NewGauge(prometheus.GaugeOpts{Name: "k2_degradation_level"})
	local.MustRegister(produced, stored, breaker, opened, feedBreaker, localLevel)
	breaker.WithLabelValues("query_engine").Set(0)
	opened.WithLabelValues("query_engine").Add(3)
	feedBreaker.Set(1)
	localLevel.Set(1)

	// The sink, another process: its registry is replaced when it restarts.
	type sinkMetrics struct {
		reg             *prometheus.Registry
		consumed, dead  *prometheus.CounterVec
		lag, lagSeconds *prometheus.GaugeVec
		level           prometheus.Gauge
	}
	newSink := func() *sinkMetrics {
		m := &sinkMetrics{reg: prometheus.NewRegistry(),
			consumed:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "k2_kafka_messages_consumed_total"}, []string{"topic"}),
			dead:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "k2_sink_dead_letters_total"}, []string{"reason"}),
			lag:        prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "k2_kafka_consumer_lag_messages"}, []string{"topic", "partition"}),
			lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "k2_kafka_consumer_lag_seconds"}, []string{"topic", "partition"}),
			level:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "k2_degradation_level"})}
		m.reg.MustRegister(m.consumed, m.dead, m.lag, m.lagSeconds, m.level)
		m.dead.WithLabelValues("invalid_price")
		m.dead.WithLabelValues("not_avro")
		return m
	}
	var sink atomic.Pointer[sinkMetrics]
	sink.Store(newSink())
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		promhttp.HandlerFor(sink.Load().reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	}))
	defer hs.Close()

	step := 2 * time.Second
	p := newPulse(nil, []*metricSource{localSource(local), remoteSource(hs.URL+"/metrics", hs.Client()),
		remoteSource("http://127.0.0.1:1/metrics", hs.Client())}, step, 5*step, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	t0 := time.Unix(1_800_000_000, 0)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * step) }

	p.read(ctx, at(0))
	if st := p.state(); st.Rates.ProducedPerS != nil || st.Rates.StoredPerS != nil {
		t.Errorf("rates from one reading: %+v", st.Rates)
	}
	s := sink.Load()
	produced.WithLabelValues("k2-feed-synth", "market.crypto.trades.synth").Add(100)
	produced.WithLabelValues("k2-sink-dlq", "market.crypto.trades.synth.dlq").Add(7) // not the feed's flow
	stored.WithLabelValues("trades").Add(60)
	s.consumed.WithLabelValues("market.crypto.trades.synth").Add(50)
	s.dead.WithLabelValues("not_avro").Add(2)
	s.lag.WithLabelValues("market.crypto.trades.synth", "0").Set(5)
	s.lag.WithLabelValues("market.crypto.trades.synth", "3").Set(40)
	s.lagSeconds.WithLabelValues("market.crypto.trades.synth", "3").Set(1.5)
	s.level.Set(2)
	p.read(ctx, at(1))
	st := p.state()
	if got := deref(st.Rates.ProducedPerS); got != 50 {
		t.Errorf("produced: %v/s, want 50 (100 in 2 s; the 7 dead letters not counted)", got)
	}
	if got := deref(st.Rates.ConsumedPerS); got != 25 {
		t.Errorf("consumed: %v/s, want 25 (read from the sink's /metrics)", got)
	}
	if got := deref(st.Rates.StoredPerS); got != 30 {
		t.Errorf("stored: %v/s, want 30", got)
	}
	if len(st.Feeds) != 1 || st.Feeds[0].Client != "k2-feed-synth" || st.Feeds[0].ProducedTotal != 100 || deref(st.Feeds[0].ProducedPerS) != 50 {
		t.Errorf("feeds: %+v", st.Feeds)
	}
	if l := st.Lag; l.TotalMessages != 45 || l.MaxSeconds != 1.5 || len(l.Partitions) != 2 || l.Partitions[0].Partition != 3 || l.Partitions[0].Seconds != 1.5 {
		t.Errorf("lag, most behind first: %+v", l)
	}
	if d := st.Degradation; d == nil || d.Level != 2 || d.Name != "GRACEFUL" {
		t.Errorf("degradation, the worst of the processes: %+v", d)
	}
	if d := st.DeadLetters; d.Total != 2 || len(d.ByReason) != 1 || d.ByReason[0] != (deadLetterCount{Reason: "not_avro", Count: 2}) {
		t.Errorf("dead letters, the reasons that have any: %+v", d)
	}
	want := []breakerState{{Name: "binance_feed", State: "open"}, {Name: "query_engine", State: "closed", OpenedTotal: 3}}
	if len(st.Breakers) != 2 || st.Breakers[0] != want[0] || st.Breakers[1] != want[1] {
		t.Errorf("breakers: %+v, want %+v", st.Breakers, want)
	}
	if len(st.Sources) != 3 || !st.Sources[0].Up || !st.Sources[1].Up || st.Sources[2].Up || st.Sources[2].Error == "" {
		t.Errorf("sources (the third does not answer): %+v", st.Sources)
	}

	// The sink restarts: its counter starts again from zero.
	s = newSink()
	sink.Store(s)
	s.consumed.WithLabelValues("market.crypto.trades.synth").Add(10)
	produced.WithLabelValues("k2-feed-synth", "market.crypto.trades.synth").Add(20)
	p.read(ctx, at(2))
	h := p.history(time.Hour)
	if got := h.Series["consumed_per_s"]; len(got) != 3 || got[0] != nil || *got[1] != 25 || *got[2] != 5 {
		t.Errorf("consumed history across the restart: %v, want [null 25 5]", floats(got))
	}
	if got := deref(p.state().Rates.ProducedPerS); got != 30 {
		t.Errorf("produced over the window: %v/s, want the mean of 50 and 10", got)
	}

	// The history keeps its span, oldest first.
	for i := 3; i < 9; i++ {
		p.read(ctx, at(i))
	}
	h = p.history(time.Hour)
	if len(h.T) != 5 || h.T[0] != at(4).Unix() || h.T[4] != at(8).Unix() || h.StepSeconds != 2 {
		t.Errorf("history: %d steps from %d to %d, want 5 from %d", len(h.T), h.T[0], h.T[len(h.T)-1], at(4).Unix())
	}
	if h = p.history(3 * step); len(h.T) != 3 || h.T[2] != at(8).Unix() {
		t.Errorf("the last 3 steps: %v", h.T)
	}
}

func deref(v *float64) float64 {
	if v == nil {
		return -1
	}
	return *v
}

func floats(vs []*float64) []float64 {
	out := make([]float64, len(vs))
	for i, v := range vs {
		out[i] = deref(v)
	}
	return out
}

// The history's per-partition lag: the few partitions most behind at
// their worst over the history kept, each with its messages a step (0
// once caught up), the same lines for a short read as for a long one, so
// a page that reads the last minute again extends the lines it drew.
func TestPulseHistoryOfThePartitionsMostBehind(t *testing.T) {
	reg := prometheus.NewRegistry()
	lag := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "k2_kafka_consumer_lag_messages"}, []string{"topic", "partition"})
	reg.MustRegister(lag)
	step := 2 * time.Second
	p := newPulse(nil, []*metricSource{localSource(reg)}, step, 10*step, slog.New(slog.DiscardHandler))
	t0 := time.Unix(1_800_000_000, 0)
	const trades, quotes = "market.equities.trades.asx", "market.equities.quotes.asx"
	// Seven partitions, every one caught up at first.
	for i := range 6 {
		lag.WithLabelValues(trades, strconv.Itoa(i)).Set(0)
	}
	lag.WithLabelValues(quotes, "0").Set(0)
	p.read(context.Background(), t0)
	if h := p.history(time.Hour); len(partitionLines(h)) != 0 {
		t.Fatalf("caught up, the history has partition lines: %v", partitionLines(h))
	}
	// Then behind, each at its own worst: trades/5 and quotes/0 the most,
	// trades/0 the least (it falls out of the five); trades/5 catches up.
	peaks := map[string][]float64{
		trades + "/0": {1, 1, 0},
		trades + "/1": {0, 30, 2},
		trades + "/2": {10, 0, 0},
		trades + "/3": {20, 0, 20},
		trades + "/4": {0, 0, 3},
		trades + "/5": {500, 9, 0},
		quotes + "/0": {0, 400, 400},
	}
	for s := range 3 {
		for key, v := range peaks {
			topic, part, _ := strings.Cut(key, "/")
			lag.WithLabelValues(topic, part).Set(v[s])
		}
		p.read(context.Background(), t0.Add(time.Duration(s+1)*step))
	}
	h := p.history(time.Hour)
	want := map[string][]float64{
		"partition_lag." + trades + "/5": {0, 500, 9, 0},
		"partition_lag." + quotes + "/0": {0, 0, 400, 400},
		"partition_lag." + trades + "/1": {0, 0, 30, 2},
		"partition_lag." + trades + "/3": {0, 20, 0, 20},
		"partition_lag." + trades + "/2": {0, 10, 0, 0},
	}
	got := partitionLines(h)
	if len(got) != len(want) {
		t.Fatalf("partition lines %v, want the five most behind: %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	for k, v := range want {
		if !slices.Equal(got[k], v) {
			t.Errorf("%s: %v, want %v", k, got[k], v)
		}
	}
	// The last step alone: the same five lines, trades/5 at 0.
	h = p.history(step)
	got = partitionLines(h)
	if len(h.T) != 1 || len(got) != 5 || !slices.Equal(got["partition_lag."+trades+"/5"], []float64{0}) || !slices.Equal(got["partition_lag."+quotes+"/0"], []float64{400}) {
		t.Errorf("the last step: %v", got)
	}
}

// partitionLines are a history's per-partition lag series, nulls as -1.
func partitionLines(h pipelineHistory) map[string][]float64 {
	out := map[string][]float64{}
	for k, v := range h.Series {
		if strings.HasPrefix(k, "partition_lag.") {
			out[k] = floats(v)
		}
	}
	return out
}
