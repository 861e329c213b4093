package ops

import (
	"net/http"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry is the metrics a process exports on /metrics. Each component
// registers its own metrics, per instance, with the Registerer it is given
// (a component given none keeps them to itself), so two sinks in one
// process never share a gauge. A new Registry holds the Go runtime, process
// and k2_build_info metrics.
//
// It remembers every family registered, so Missing can tell a family that
// would not show in /metrics because none of its series exists yet: K2
// creates its series at zero when the component starts, so that alerts and
// dashboards see them before the first event.
type Registry struct {
	*prometheus.Registry

	mu       sync.Mutex
	families map[string]bool
}

// NewRegistry returns a registry with the runtime, process and build metrics.
func NewRegistry() *Registry {
	r := &Registry{Registry: prometheus.NewRegistry(), families: map[string]bool{}}
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfo())
	return r
}

// Register records c's families and registers it.
func (r *Registry) Register(c prometheus.Collector) error {
	if err := r.Registry.Register(c); err != nil {
		return err
	}
	descs := make(chan *prometheus.Desc, 16)
	go func() {
		c.Describe(descs)
		close(descs)
	}()
	r.mu.Lock()
	defer r.mu.Unlock()
	for d := range descs {
		r.families[descName(d)] = true
	}
	return nil
}

// MustRegister registers collectors and panics on a clash: a bug in the
// code, never an input.
func (r *Registry) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// Missing lists the families registered that have no series: they would
// be absent from /metrics.
func (r *Registry) Missing() ([]string, error) {
	mfs, err := r.Gather()
	if err != nil {
		return nil, err
	}
	present := map[string]bool{}
	for _, mf := range mfs {
		if len(mf.GetMetric()) > 0 {
			present[mf.GetName()] = true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for f := range r.families {
		if !present[f] {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Handler serves the registry in the Prometheus exposition format.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r, promhttp.HandlerOpts{Registry: r})
}

// Metrics makes a component's metrics, registered with one Registerer.
type Metrics struct{ f promauto.Factory }

// NewMetrics makes metrics registered with reg, or with a registry of
// their own when reg is nil (a component used without a process around it).
func NewMetrics(reg prometheus.Registerer) Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	return Metrics{promauto.With(reg)}
}

func (m Metrics) Counter(name, help string) prometheus.Counter {
	return m.f.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func (m Metrics) CounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return m.f.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func (m Metrics) Gauge(name, help string) prometheus.Gauge {
	return m.f.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

func (m Metrics) GaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return m.f.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

func (m Metrics) Histogram(name, help string, buckets []float64) prometheus.Histogram {
	return m.f.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
}

func (m Metrics) HistogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return m.f.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
}

// Sum adds up the series of a family whose labels include the given
// name/value pairs (none: every series); counters and gauges by value,
// histograms by count. It is how tests and the status line read a
// process's metrics as Prometheus would.
func Sum(g prometheus.Gatherer, family string, labels ...string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		return 0
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			case m.Histogram != nil:
				total += float64(m.Histogram.GetSampleCount())
			case m.Untyped != nil:
				total += m.Untyped.GetValue()
			}
		}
	}
	return total
}
