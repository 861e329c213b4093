package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
)

// The pipeline routes: the dashboard's pipeline view reads them, and so
// may anyone who wants the pulse without a Prometheus server.

// pipelineState is GET /v1/pipeline's answer: the latest reading.
type pipelineState struct {
	At md.Timestamp `json:"at"`
	// Sources are the processes whose metrics were read, and whether they
	// answered.
	Sources     []sourceStatus    `json:"sources"`
	Rates       pipelineRates     `json:"rates"`
	Feeds       []feedRate        `json:"feeds"`
	Lag         lagState          `json:"lag"`
	Degradation *degradationState `json:"degradation"`
	Breakers    []breakerState    `json:"breakers"`
	DeadLetters deadLetterState   `json:"dead_letters"`
	Pool        *poolState        `json:"pool"`
	Tables      []tableState      `json:"tables"`
}

type sourceStatus struct {
	Name  string `json:"name"`
	URL   string `json:"url,omitempty"`
	Up    bool   `json:"up"`
	Error string `json:"error,omitempty"`
}

// pipelineRates are records per second acknowledged by the broker and
// read by the sinks over the last WindowSeconds, and stored in the lake
// over the last StoredWindowSeconds. Nil until two readings exist, or
// where no source exports them.
type pipelineRates struct {
	ProducedPerS        *float64 `json:"produced_per_s"`
	ConsumedPerS        *float64 `json:"consumed_per_s"`
	StoredPerS          *float64 `json:"stored_per_s"`
	WindowSeconds       float64  `json:"window_seconds"`
	StoredWindowSeconds float64  `json:"stored_window_seconds"`
}

// feedRate is one producer's (a feed's client id) rate and total.
type feedRate struct {
	Client        string   `json:"client"`
	ProducedPerS  *float64 `json:"produced_per_s"`
	ProducedTotal float64  `json:"produced_total"`
	rate          float64
}

type lagState struct {
	TotalMessages float64 `json:"total_messages"`
	MaxSeconds    float64 `json:"max_seconds"`
	// Partitions, the most behind first.
	Partitions []partitionLag `json:"partitions"`
}

type partitionLag struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Messages  float64 `json:"messages"`
	Seconds   float64 `json:"seconds"`
}

type degradationState struct {
	Level int    `json:"level"`
	Name  string `json:"name"`
}

type breakerState struct {
	Name                string  `json:"name"`
	State               string  `json:"state"`
	ConsecutiveFailures float64 `json:"consecutive_failures"`
	OpenedTotal         float64 `json:"opened_total"`
	RejectionsTotal     float64 `json:"rejections_total"`
}

type deadLetterState struct {
	Total    float64           `json:"total"`
	ByReason []deadLetterCount `json:"by_reason"`
}

type deadLetterCount struct {
	Reason string  `json:"reason"`
	Count  float64 `json:"count"`
}

type poolState struct {
	Size        int     `json:"size"`
	Active      int     `json:"active"`
	Waiting     int     `json:"waiting"`
	Utilisation float64 `json:"utilisation"`
}

type tableState struct {
	Table     string `json:"table"`
	Rows      int64  `json:"rows"`
	DataFiles int64  `json:"data_files"`
	Snapshots int    `json:"snapshots"`
	// LastCommit is when the current snapshot was committed (null: none).
	LastCommit *md.Timestamp `json:"last_commit"`
}

// pipelineHistory is GET /v1/pipeline/history's answer: columns, one
// value per step (null where unknown), as time-series charts take them.
type pipelineHistory struct {
	StepSeconds float64               `json:"step_seconds"`
	T           []int64               `json:"t"`
	Series      map[string][]*float64 `json:"series"`
}

// tablePrefix is the namespace the engine's table names carry.
const tablePrefix = lake.Namespace + "."

var (
	historyMinutes = param{name: "minutes", kind: intKind, min: 1, max: 24 * 60, example: "5", def: 24 * 60,
		doc: "How many minutes back (default all that is kept: --api-pipeline-history)"}
	commitsTable = param{name: "table", kind: choiceKind, values: record.AllTableNames(), none: true, example: "trades",
		doc: "The table: a record kind's or a bar table's (default every record kind's; a bar table commits on every roll, which would crowd the others out)"}
	commitsLimit = limitParam(20, 200)
)

func (s *Server) pipelineRoutes() []route {
	return []route{
		{method: "GET", path: "/v1/pipeline", summary: "The pipeline's pulse: rates, lag per partition, degradation, breakers, dead letters by reason, the query pool and the tables",
			doc: "Read every --api-pipeline-step from this process's metrics and those of the roles named by --api-pipeline-metrics; rates are averaged over window_seconds.",
			ok:  jsonReply(pipelineState{}), serve: s.pipeline},
		{method: "GET", path: "/v1/pipeline/history", summary: "The pipeline's pulse over the last minutes, as columns (one value a step, null where unknown)",
			doc: "Series: produced_per_s, consumed_per_s, stored_per_s, lag_messages (all partitions), lag_seconds (the worst partition), dead_letters, degradation, pool_utilisation, " +
				"files.TABLE and snapshots.TABLE, and partition_lag.TOPIC/PARTITION: the messages to read of the 5 partitions most behind at any step of the history kept (0 where one had none).",
			params: []param{historyMinutes}, ok: jsonReply(pipelineHistory{}), serve: s.pipelineHistory},
		{method: "GET", path: "/v1/commits", summary: "The last lake commits (the transaction log): snapshot, rows, files, bytes and duration, newest first",
			params: []param{commitsTable, commitsLimit}, ok: jsonReply([]query.Commit{}), serve: s.commits},
	}
}

func (s *Server) pipeline(w http.ResponseWriter, r *http.Request, p *params) {
	s.answer(w, r, p.err, func(context.Context, *meta) (any, int, error) {
		return s.pulse.state(), -1, nil
	})
}

func (s *Server) pipelineHistory(w http.ResponseWriter, r *http.Request, p *params) {
	span := min(s.o.PipelineHistory, time.Duration(p.integer(historyMinutes))*time.Minute)
	s.answer(w, r, p.err, func(context.Context, *meta) (any, int, error) {
		h := s.pulse.history(span)
		return h, len(h.T), nil
	})
}

func (s *Server) commits(w http.ResponseWriter, r *http.Request, p *params) {
	tables := record.TableNames()
	if t := p.oneOf(commitsTable); t != "" {
		tables = []string{t}
	}
	limit := int(p.integer(commitsLimit))
	s.answer(w, r, p.err, func(ctx context.Context, _ *meta) (any, int, error) {
		c, err := s.engine.Commits(ctx, tables, limit)
		return c, len(c), err
	})
}

// newPulse starts reading the pipeline's metrics every step, until the
// server stops.
func (s *Server) newPulse() *pulse {
	var sources []*metricSource
	if s.o.Gatherer != nil {
		sources = append(sources, localSource(s.o.Gatherer))
	}
	client := &http.Client{Timeout: s.o.PipelineStep}
	for _, u := range s.o.PipelineMetrics {
		sources = append(sources, remoteSource(u, client))
	}
	p := newPulse(s.engine, sources, s.o.PipelineStep, s.o.PipelineHistory, s.log)
	go p.run(s.done)
	return p
}

// metricSource is a process whose metrics the pulse reads: this one's
// registry, or another role's /metrics over HTTP.
type metricSource struct {
	name, url string
	gather    func(context.Context) (map[string]*dto.MetricFamily, error)
}

// remoteSource reads another role's /metrics in Prometheus's text format.
func remoteSource(url string, client *http.Client) *metricSource {
	return &metricSource{name: url, url: url, gather: func(ctx context.Context) (map[string]*dto.MetricFamily, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "text/plain;version=0.0.4")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s answered %s", url, resp.Status)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, 64<<20))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", url, err)
		}
		return fams, nil
	}}
}
