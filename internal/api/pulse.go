package api

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/k2-market-data/k2/internal/bus"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/resilience"
)

// pulse is the pipeline's pulse for the dashboard: every step it reads the
// metrics of this process and of the other roles it was given (their
// /metrics), keeps the latest reading and a short history of it, as
// Prometheus would but without one: so that a page can draw the last
// minutes the moment it opens, on a machine that runs k2 up alone.
type pulse struct {
	engine  *query.Engine
	sources []*metricSource
	step    time.Duration
	log     *slog.Logger

	mu   sync.Mutex
	last pipelineState
	ring []point // oldest first once full; len ≤ size
	size int
	// prev are the counters' values at the last reading, by source and
	// series, to take the rates from (a counter that went down restarted).
	prev    map[string]float64
	wasRead map[string]bool // the sources read at the last reading
	at      time.Time       // of the last reading
	// partitions names the partitions ever seen behind ("topic/partition"),
	// which points' behind lists index; partIndex finds them.
	partitions []string
	partIndex  map[string]int32
}

// point is one step of the history. NaN is unknown (drawn as a gap).
type point struct {
	t                          int64 // unix seconds
	produced, consumed, stored float64
	lagMessages, lagSeconds    float64
	deadLetters, degradation   float64
	poolUtilisation            float64
	files, snapshots           []float64 // by table, in record.TableNames order
	// behind are the partitions with messages to read at this step; the
	// others had none. Kept sparse: a caught-up pipeline costs nothing a
	// step, however many partitions it has.
	behind []partitionBehind
}

type partitionBehind struct {
	partition int32 // in pulse.partitions
	messages  float64
}

// partitionSeries is how many partitions' lag the history answers: the
// most behind over the history kept, enough for a small chart to tell
// one stuck partition from a slow topic.
const partitionSeries = 5

func newPulse(e *query.Engine, sources []*metricSource, step, history time.Duration, log *slog.Logger) *pulse {
	return &pulse{engine: e, sources: sources, step: step, log: log,
		size: max(1, int(history/step)), prev: map[string]float64{}, partIndex: map[string]int32{}}
}

// run reads every step until done closes.
func (p *pulse) run(done <-chan struct{}) {
	t := time.NewTicker(p.step)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), p.step)
		p.read(ctx, time.Now())
		cancel()
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

// read takes one reading: every source's metrics and the lake's tables.
func (p *pulse) read(ctx context.Context, now time.Time) {
	// Empty lists, not nulls, for a page to draw.
	st := pipelineState{At: md.TimestampOf(now), Feeds: []feedRate{}, Breakers: []breakerState{},
		Lag: lagState{Partitions: []partitionLag{}}, DeadLetters: deadLetterState{ByReason: []deadLetterCount{}}}
	fams := make([]map[string]*dto.MetricFamily, len(p.sources))
	st.Sources = make([]sourceStatus, len(p.sources))
	var wg sync.WaitGroup
	for i, src := range p.sources {
		wg.Go(func() {
			f, err := src.gather(ctx)
			fams[i] = f
			st.Sources[i] = sourceStatus{Name: src.name, URL: src.url, Up: err == nil}
			if err != nil {
				st.Sources[i].Error = err.Error()
			}
		})
	}
	wg.Wait()
	lk := p.readLake(ctx)

	p.mu.Lock()
	defer p.mu.Unlock()
	dt := now.Sub(p.at).Seconds()
	first := p.at.IsZero()
	p.at = now
	// rate is a counter's increase since the last reading, per second:
	// unknown if its process was not read then; from zero for a series
	// new since (a label value seen for the first time) or one that went
	// down (its process restarted).
	cur := map[string]float64{}
	var src string
	rate := func(key string, v float64) float64 {
		key = src + key
		cur[key] = v
		if first || dt <= 0 || !p.wasRead[src] {
			return math.NaN()
		}
		old := p.prev[key]
		if v < old {
			old = 0
		}
		return (v - old) / dt
	}
	read := map[string]bool{}
	nan := math.NaN()
	pt := point{t: now.Unix(), produced: nan, consumed: nan, stored: nan, degradation: nan, poolUtilisation: nan}
	feeds := map[string]*feedRate{}
	dead := map[string]float64{}
	for i, f := range fams {
		src = strconv.Itoa(i) + "|"
		read[src] = f != nil
		for _, m := range samples(f, "k2_kafka_messages_produced_total") {
			if strings.HasSuffix(label(m, "topic"), bus.DLQSuffix) {
				continue // dead letters, counted below by reason
			}
			client := label(m, "client")
			r := rate("p|"+client+"|"+label(m, "topic"), m.GetCounter().GetValue())
			fr := feeds[client]
			if fr == nil {
				fr = &feedRate{Client: client, rate: math.NaN()}
				feeds[client] = fr
			}
			fr.ProducedTotal += m.GetCounter().GetValue()
			fr.rate = addKnown(fr.rate, r)
			pt.produced = addKnown(pt.produced, r)
		}
		for _, m := range samples(f, "k2_kafka_messages_consumed_total") {
			pt.consumed = addKnown(pt.consumed, rate("c|"+label(m, "topic"), m.GetCounter().GetValue()))
		}
		for _, m := range samples(f, "k2_iceberg_rows_written_total") {
			pt.stored = addKnown(pt.stored, rate("s|"+label(m, "table"), m.GetCounter().GetValue()))
		}
		seconds := map[string]float64{}
		for _, m := range samples(f, "k2_kafka_consumer_lag_seconds") {
			seconds[label(m, "topic")+"|"+label(m, "partition")] = m.GetGauge().GetValue()
		}
		for _, m := range samples(f, "k2_kafka_consumer_lag_messages") {
			part, _ := strconv.Atoi(label(m, "partition"))
			l := partitionLag{Topic: label(m, "topic"), Partition: int32(part), Messages: m.GetGauge().GetValue(),
				Seconds: seconds[label(m, "topic")+"|"+label(m, "partition")]}
			st.Lag.Partitions = append(st.Lag.Partitions, l)
			st.Lag.TotalMessages += l.Messages
			st.Lag.MaxSeconds = max(st.Lag.MaxSeconds, l.Seconds)
			if l.Messages > 0 {
				pt.behind = append(pt.behind, partitionBehind{p.partitionIndex(l.Topic + "/" + label(m, "partition")), l.Messages})
			}
		}
		for _, m := range samples(f, "k2_degradation_level") {
			// Several sinks: the worst of them.
			pt.degradation = math.Max(nanToZero(pt.degradation), m.GetGauge().GetValue())
		}
		for _, m := range samples(f, "k2_sink_dead_letters_total") {
			dead[label(m, "reason")] += m.GetCounter().GetValue()
		}
		st.Breakers = append(st.Breakers, breakers(f)...)
	}
	p.prev, p.wasRead = cur, read

	slices.SortFunc(st.Lag.Partitions, func(a, b partitionLag) int {
		return cmp.Or(cmp.Compare(b.Messages, a.Messages), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	pt.lagMessages, pt.lagSeconds = st.Lag.TotalMessages, st.Lag.MaxSeconds
	if !math.IsNaN(pt.degradation) {
		lvl := int(pt.degradation)
		st.Degradation = &degradationState{Level: lvl, Name: resilience.Level(lvl).String()}
	}
	for _, reason := range slices.Sorted(maps.Keys(dead)) {
		if dead[reason] == 0 {
			continue // every reason is exported from the start, at zero
		}
		st.DeadLetters.ByReason = append(st.DeadLetters.ByReason, deadLetterCount{Reason: reason, Count: dead[reason]})
		st.DeadLetters.Total += dead[reason]
		pt.deadLetters += dead[reason]
	}
	for _, c := range slices.Sorted(maps.Keys(feeds)) {
		// A producer's series start at zero for every topic it may write:
		// one that never wrote a market topic (the sinks' dead-letter
		// producers) is no feed.
		if feeds[c].ProducedTotal > 0 {
			st.Feeds = append(st.Feeds, *feeds[c])
		}
	}

	st.Pool, st.Tables, pt.poolUtilisation, pt.files, pt.snapshots = lk.pool, lk.tables, lk.poolUtilisation, lk.files, lk.snapshots

	if len(p.ring) == p.size {
		copy(p.ring, p.ring[1:])
		p.ring = p.ring[:p.size-1]
	}
	p.ring = append(p.ring, pt)
	st.Rates = p.rates()
	for i := range st.Feeds {
		st.Feeds[i].ProducedPerS = nanToNil(st.Feeds[i].rate)
	}
	p.last = st
}

// partitionIndex is a partition's place in p.partitions, given one the
// first time it is seen behind. Called with p.mu held.
func (p *pulse) partitionIndex(key string) int32 {
	i, ok := p.partIndex[key]
	if !ok {
		i = int32(len(p.partitions))
		p.partitions = append(p.partitions, key)
		p.partIndex[key] = i
	}
	return i
}

// lakeReading is the query engine's part of a reading: its pool, and the
// tables' counts from the lake's metadata.
type lakeReading struct {
	pool             *poolState
	tables           []tableState
	poolUtilisation  float64
	files, snapshots []float64 // by table, in record.TableNames order; NaN unknown
}

// readLake reads the engine's pool and the tables' counts (outside the
// pulse's lock: a slow catalog delays the next reading, not the answers).
func (p *pulse) readLake(ctx context.Context) lakeReading {
	lk := lakeReading{tables: []tableState{}, poolUtilisation: math.NaN()}
	if p.engine == nil {
		return lk
	}
	ps := p.engine.PoolStats()
	lk.pool = &poolState{Size: ps.PoolSize, Active: ps.ActiveConnections, Waiting: ps.Waiting}
	if ps.PoolSize > 0 {
		lk.pool.Utilisation = float64(ps.ActiveConnections) / float64(ps.PoolSize)
		lk.poolUtilisation = lk.pool.Utilisation
	}
	counts, err := p.engine.Counts(ctx)
	if err != nil {
		p.log.Debug("pipeline: the tables' counts", "error", err)
	}
	byName := map[string]query.TableStats{}
	for _, c := range counts {
		byName[strings.TrimPrefix(c.Table, tablePrefix)] = c
	}
	for _, name := range record.TableNames() {
		c, ok := byName[name]
		if !ok {
			lk.files, lk.snapshots = append(lk.files, math.NaN()), append(lk.snapshots, math.NaN())
			continue
		}
		ts := tableState{Table: name, Rows: c.Rows, DataFiles: c.DataFiles, Snapshots: c.Snapshots}
		if c.Committed != 0 {
			ts.LastCommit = &c.Committed
		}
		lk.tables = append(lk.tables, ts)
		lk.files, lk.snapshots = append(lk.files, float64(c.DataFiles)), append(lk.snapshots, float64(c.Snapshots))
	}
	return lk
}

// rateWindow is how far back /v1/pipeline's rates of the stream look;
// storedWindow how far back the lake's: a sink commits in batches (every
// --sink-batch-age at the most, 30 s by default), so a shorter window
// would read as bursts and silences.
const (
	rateWindow   = 10 * time.Second
	storedWindow = time.Minute
)

// rates averages the last readings' rates over their windows.
func (p *pulse) rates() pipelineRates {
	last := func(w time.Duration, v func(point) float64) (*float64, float64) {
		n := min(len(p.ring), max(1, int(w/p.step)))
		vs := make([]float64, 0, n)
		for _, pt := range p.ring[len(p.ring)-n:] {
			vs = append(vs, v(pt))
		}
		return mean(vs), float64(n) * p.step.Seconds()
	}
	var r pipelineRates
	r.ProducedPerS, r.WindowSeconds = last(rateWindow, func(pt point) float64 { return pt.produced })
	r.ConsumedPerS, _ = last(rateWindow, func(pt point) float64 { return pt.consumed })
	r.StoredPerS, r.StoredWindowSeconds = last(storedWindow, func(pt point) float64 { return pt.stored })
	return r
}

// state is the latest reading (empty before the first).
func (p *pulse) state() pipelineState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// history is the readings of the last span, as columns.
func (p *pulse) history(span time.Duration) pipelineHistory {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := min(len(p.ring), max(1, int(span/p.step)))
	pts := p.ring[len(p.ring)-n:]
	h := pipelineHistory{StepSeconds: p.step.Seconds(), T: make([]int64, len(pts)), Series: map[string][]*float64{}}
	col := func(name string, v func(point) float64) {
		out := make([]*float64, len(pts))
		for i, pt := range pts {
			out[i] = nanToNil(v(pt))
		}
		h.Series[name] = out
	}
	for i, pt := range pts {
		h.T[i] = pt.t
	}
	col("produced_per_s", func(pt point) float64 { return pt.produced })
	col("consumed_per_s", func(pt point) float64 { return pt.consumed })
	col("stored_per_s", func(pt point) float64 { return pt.stored })
	col("lag_messages", func(pt point) float64 { return pt.lagMessages })
	col("lag_seconds", func(pt point) float64 { return pt.lagSeconds })
	col("dead_letters", func(pt point) float64 { return pt.deadLetters })
	col("degradation", func(pt point) float64 { return pt.degradation })
	col("pool_utilisation", func(pt point) float64 { return pt.poolUtilisation })
	for i, name := range record.TableNames() {
		at := func(v []float64) float64 {
			if i < len(v) {
				return v[i]
			}
			return math.NaN()
		}
		col("files."+name, func(pt point) float64 { return at(pt.files) })
		col("snapshots."+name, func(pt point) float64 { return at(pt.snapshots) })
	}
	// The partitions most behind at their worst over all the history kept,
	// not just the span asked for: a page reading the last minute again
	// gets the same few lines to extend. 0 where a partition had nothing
	// to read.
	for _, i := range p.mostBehind(partitionSeries) {
		col("partition_lag."+p.partitions[i], func(pt point) float64 {
			for _, b := range pt.behind {
				if b.partition == i {
					return b.messages
				}
			}
			return 0
		})
	}
	return h
}

// mostBehind are the n partitions with the most messages to read at any
// step of the history kept (ties by name), of those ever behind in it.
func (p *pulse) mostBehind(n int) []int32 {
	peak := map[int32]float64{}
	for _, pt := range p.ring {
		for _, b := range pt.behind {
			peak[b.partition] = max(peak[b.partition], b.messages)
		}
	}
	top := slices.SortedFunc(maps.Keys(peak), func(a, b int32) int {
		return cmp.Or(cmp.Compare(peak[b], peak[a]), cmp.Compare(p.partitions[a], p.partitions[b]))
	})
	return top[:min(n, len(top))]
}

// breakers are a source's circuit breakers: the API's (by breaker_name)
// and each feed's (k2_<feed>_circuit_breaker_state, one per process).
func breakers(f map[string]*dto.MetricFamily) []breakerState {
	var out []breakerState
	for _, name := range slices.Sorted(maps.Keys(f)) {
		prefix, ok := strings.CutSuffix(name, "circuit_breaker_state")
		if !ok {
			continue
		}
		for _, m := range f[name].GetMetric() {
			b := breakerState{Name: label(m, "breaker_name"), State: breakerStates[int(m.GetGauge().GetValue())]}
			if b.Name == "" {
				b.Name = strings.Trim(strings.TrimPrefix(prefix, "k2_"), "_") + "_feed"
			}
			match := func(suffix string) float64 {
				for _, o := range f[prefix+suffix].GetMetric() {
					if label(o, "breaker_name") == label(m, "breaker_name") {
						return value(o)
					}
				}
				return 0
			}
			b.ConsecutiveFailures = match("circuit_breaker_consecutive_failures")
			b.OpenedTotal = match("circuit_breaker_opened_total")
			b.RejectionsTotal = match("circuit_breaker_rejections_total")
			out = append(out, b)
		}
	}
	return out
}

// breakerStates name the breaker gauges' values.
var breakerStates = map[int]string{0: "closed", 1: "open", 2: "half-open"}

// samples are the samples of a family, none if absent.
func samples(f map[string]*dto.MetricFamily, name string) []*dto.Metric {
	return f[name].GetMetric()
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// value is a gauge's or a counter's value.
func value(m *dto.Metric) float64 {
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// addKnown adds r to a sum that starts unknown (NaN): the sum stays
// unknown only while every part is.
func addKnown(sum, r float64) float64 {
	switch {
	case math.IsNaN(r):
		return sum
	case math.IsNaN(sum):
		return r
	}
	return sum + r
}

func nanToZero(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}

func nanToNil(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// mean of the known values, nil when none is.
func mean(vs []float64) *float64 {
	var sum float64
	n := 0
	for _, v := range vs {
		if !math.IsNaN(v) {
			sum += v
			n++
		}
	}
	if n == 0 {
		return nil
	}
	m := sum / float64(n)
	return &m
}

// localSource reads this process's own registry.
func localSource(g prometheus.Gatherer) *metricSource {
	return &metricSource{name: "this process", gather: func(context.Context) (map[string]*dto.MetricFamily, error) {
		fams, err := g.Gather()
		out := make(map[string]*dto.MetricFamily, len(fams))
		for _, f := range fams {
			out[f.GetName()] = f
		}
		return out, err
	}}
}
