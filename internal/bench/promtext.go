package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricSet is one scrape of a process's /metrics, taken at a moment.
type metricSet struct {
	at       time.Time
	families map[string]*dto.MetricFamily
}

// scrapeMetrics reads url (a /metrics page in the Prometheus text format).
func scrapeMetrics(ctx context.Context, client *http.Client, url string) (metricSet, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return metricSet{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return metricSet{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return metricSet{}, fmt.Errorf("%s: %s", url, resp.Status)
	}
	at := time.Now()
	fams, err := parseMetrics(resp.Body)
	if err != nil {
		return metricSet{}, fmt.Errorf("%s: %w", url, err)
	}
	return metricSet{at: at, families: fams}, nil
}

// parseMetrics reads the Prometheus text format.
func parseMetrics(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// value is the value of the first series of a counter, gauge or untyped
// metric, and whether there is one.
func (m metricSet) value(name string) (float64, bool) {
	f := m.families[name]
	if f == nil || len(f.GetMetric()) == 0 {
		return 0, false
	}
	s := f.GetMetric()[0]
	switch {
	case s.Counter != nil:
		return s.GetCounter().GetValue(), true
	case s.Gauge != nil:
		return s.GetGauge().GetValue(), true
	case s.Untyped != nil:
		return s.GetUntyped().GetValue(), true
	}
	return 0, false
}

// histogram is a cumulative histogram: counts[i] observations were ≤
// bounds[i]; count is every observation (the +Inf bucket).
type histogram struct {
	bounds []float64
	counts []float64
	count  float64
}

// histogram returns the series of a histogram whose label is value.
func (m metricSet) histogram(name, label, value string) (histogram, bool) {
	f := m.families[name]
	if f == nil {
		return histogram{}, false
	}
	for _, s := range f.GetMetric() {
		if s.Histogram == nil || !hasLabel(s, label, value) {
			continue
		}
		var h histogram
		for _, b := range s.GetHistogram().GetBucket() {
			if math.IsInf(b.GetUpperBound(), +1) {
				continue
			}
			h.bounds = append(h.bounds, b.GetUpperBound())
			h.counts = append(h.counts, float64(b.GetCumulativeCount()))
		}
		h.count = float64(s.GetHistogram().GetSampleCount())
		return h, true
	}
	return histogram{}, false
}

func hasLabel(s *dto.Metric, name, value string) bool {
	for _, l := range s.GetLabel() {
		if l.GetName() == name {
			return l.GetValue() == value
		}
	}
	return false
}

// since is what was observed after prev: the bucket deltas. A histogram
// that went backwards (the process restarted) counts from zero.
func (h histogram) since(prev histogram) histogram {
	if h.count < prev.count || !slices.Equal(h.bounds, prev.bounds) {
		return h
	}
	d := histogram{bounds: h.bounds, counts: make([]float64, len(h.counts)), count: h.count - prev.count}
	for i := range h.counts {
		d.counts[i] = h.counts[i] - prev.counts[i]
	}
	return d
}

// quantile estimates the q-quantile (0 ≤ q ≤ 1) as Prometheus's
// histogram_quantile does: find the bucket holding the rank and
// interpolate linearly inside it, the first bucket starting at 0 (if its
// bound is positive); a rank in the +Inf bucket is the highest finite
// bound. NaN when nothing was observed.
func (h histogram) quantile(q float64) float64 {
	if h.count == 0 || q < 0 || q > 1 || math.IsNaN(q) {
		return math.NaN()
	}
	rank := q * h.count
	b := 0
	for b < len(h.counts) && h.counts[b] < rank {
		b++
	}
	if b == len(h.counts) { // in the +Inf bucket
		if b == 0 {
			return math.NaN()
		}
		return h.bounds[b-1]
	}
	if b == 0 && h.bounds[0] <= 0 {
		return h.bounds[0]
	}
	start, end, count := 0.0, h.bounds[b], h.counts[b]
	if b > 0 {
		start = h.bounds[b-1]
		count -= h.counts[b-1]
		rank -= h.counts[b-1]
	}
	if count == 0 {
		return end
	}
	return start + (end-start)*(rank/count)
}
