package stack

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/feed/synth"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/testutil"
)

// The answers of the pipeline routes, as a client reads them.
type pipelineAnswer struct {
	Sources []struct {
		Name, URL, Error string
		Up               bool
	}
	Rates struct {
		ProducedPerS *float64 `json:"produced_per_s"`
		ConsumedPerS *float64 `json:"consumed_per_s"`
		StoredPerS   *float64 `json:"stored_per_s"`
	}
	Feeds []struct {
		Client        string
		ProducedTotal float64 `json:"produced_total"`
	}
	Lag struct {
		Partitions []lagEntry
	}
	Breakers    []breakerEntry
	DeadLetters struct {
		Total    float64
		ByReason []struct {
			Reason string
			Count  float64
		} `json:"by_reason"`
	} `json:"dead_letters"`
	Tables []tableEntry
}

type (
	lagEntry struct {
		Topic     string
		Partition int32
	}
	breakerEntry struct{ Name, State string }
	tableEntry   struct {
		Table      string
		Rows       int64
		DataFiles  int64 `json:"data_files"`
		Snapshots  int
		LastCommit string `json:"last_commit"`
	}
)

type commitAnswer struct {
	Table      string
	SnapshotID int64 `json:"snapshot_id"`
	Timestamp  string
	Writer     string
	Rows       int64
	Files      int64
	TotalRows  int64    `json:"total_rows"`
	DurationMs *float64 `json:"duration_ms"`
}

// getData reads a route's data into out.
func (r *running) getData(t *testing.T, path string, out any) {
	t.Helper()
	code, body := r.get(t, path)
	var env struct {
		Data json.RawMessage
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil || code != http.StatusOK {
		t.Fatalf("%s: %d %.300s", path, code, body)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		t.Fatalf("%s: %v in %.300s", path, err, env.Data)
	}
}

// k2 api shows the pulse of a cluster's other roles, read from their
// /metrics: the feed's rate, the sink's reads, lag and dead letters with
// their reasons, a role that does not answer; and the lake's commits, as
// the sink made them.
func TestPipelineRoutesReadEveryRole(t *testing.T) {
	t.Parallel()
	broker := start(t, "broker", testConfig(t), Parts{Embedded: true})
	dataDir := t.TempDir()
	remote := func(mod func(*config.Config)) config.Config {
		cfg := testConfig(t)
		cfg.DataDir, cfg.Lake.Catalog, cfg.Lake.Warehouse = dataDir, "", ""
		cfg.Kafka.Brokers, cfg.Kafka.Registry = strings.Join(broker.Brokers(), ","), broker.RegistryURL()
		if mod != nil {
			mod(&cfg)
		}
		if err := cfg.Resolve(); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	sink := start(t, "sink", remote(nil), Parts{Sink: true})
	feed := start(t, "feed", remote(func(c *config.Config) { c.Feed.Rate = 300 }), Parts{Feed: "synth"})
	gone := "http://127.0.0.1:1/metrics"
	apiRole := start(t, "api", remote(func(c *config.Config) {
		c.API.PipelineStep = 200 * time.Millisecond
		// The test polls faster than a page would (its 300 a minute).
		c.API.RateLimit = "off"
		c.API.PipelineMetrics = []string{"http://" + sink.HTTPAddr() + "/metrics", "http://" + feed.HTTPAddr() + "/metrics", gone}
	}), Parts{API: true})

	// A record that is not Avro reaches the sink, which sets it aside.
	cl, err := bus.NewClient(broker.Brokers(), bus.Security{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topic := bus.Topic(md.Crypto, record.Trade.DataType, synth.Code)
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: []byte("not avro")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var p pipelineAnswer
	testutil.WaitFor(t, "the pulse of every role", 60*time.Second, func() bool {
		apiRole.getData(t, "/v1/pipeline", &p)
		return positive(p.Rates.ProducedPerS) && positive(p.Rates.ConsumedPerS) && positive(p.Rates.StoredPerS) && p.DeadLetters.Total > 0
	})
	if len(p.Sources) != 4 || !p.Sources[0].Up || !p.Sources[1].Up || !p.Sources[2].Up || p.Sources[3].Up || p.Sources[3].URL != gone || p.Sources[3].Error == "" {
		t.Errorf("sources: this process, the sink and the feed answer, %s does not: %+v", gone, p.Sources)
	}
	if len(p.Feeds) != 1 || p.Feeds[0].Client != "k2-feed-synth" || p.Feeds[0].ProducedTotal <= 0 {
		t.Errorf("feeds: %+v", p.Feeds)
	}
	if len(p.DeadLetters.ByReason) != 1 || p.DeadLetters.ByReason[0].Count != 1 {
		t.Errorf("dead letters: one record set aside, with its reason: %+v", p.DeadLetters)
	}
	if !slices.ContainsFunc(p.Lag.Partitions, func(l lagEntry) bool { return l.Topic == topic }) {
		t.Errorf("lag: no partition of %s in %+v", topic, p.Lag.Partitions)
	}
	if !slices.ContainsFunc(p.Breakers, func(b breakerEntry) bool { return b.Name == "query_engine" && b.State == "closed" }) {
		t.Errorf("breakers: %+v", p.Breakers)
	}

	// The history holds the same pulse, a value a step.
	var h struct {
		StepSeconds float64 `json:"step_seconds"`
		T           []int64
		Series      map[string][]*float64
	}
	apiRole.getData(t, "/v1/pipeline/history?minutes=1", &h)
	if h.StepSeconds != 0.2 || len(h.T) < 2 || len(h.Series["stored_per_s"]) != len(h.T) || !slices.ContainsFunc(h.Series["stored_per_s"], positive) {
		t.Errorf("history: step %v, %d steps, stored %v", h.StepSeconds, len(h.T), h.Series["stored_per_s"])
	}
	if code, body := apiRole.get(t, "/v1/pipeline/history?minutes=0"); code != http.StatusBadRequest || !strings.Contains(body, "minutes") {
		t.Errorf("minutes=0: %d %s", code, body)
	}

	// The commits are the sink's, each with its rows, files and duration;
	// the tables' counts agree with them.
	var commits []commitAnswer
	apiRole.getData(t, "/v1/commits?table=trades&limit=200", &commits)
	if len(commits) == 0 {
		t.Fatal("no commits")
	}
	// The pulse reads the tables once a step, so it may be a step behind the
	// commits just read; wait for the step that has seen them.
	testutil.WaitFor(t, "the pulse to see the newest commit", 10*time.Second, func() bool {
		p = pipelineAnswer{}
		apiRole.getData(t, "/v1/pipeline", &p)
		i := slices.IndexFunc(p.Tables, func(ts tableEntry) bool { return ts.Table == "trades" })
		return i >= 0 && p.Tables[i].LastCommit >= commits[0].Timestamp
	})
	var rows int64
	for _, c := range commits {
		if c.Table != "trades" || c.Writer != "sink:k2-sink" || c.Rows <= 0 || c.Files <= 0 || c.DurationMs == nil || *c.DurationMs < 0 {
			t.Errorf("commit %+v", c)
		}
		rows += c.Rows
	}
	if commits[0].TotalRows != rows {
		t.Errorf("the newest commit's total %d is not the sum of the commits' rows %d", commits[0].TotalRows, rows)
	}
	i := slices.IndexFunc(p.Tables, func(ts tableEntry) bool { return ts.Table == "trades" })
	if i < 0 || p.Tables[i].Rows < rows || p.Tables[i].Snapshots < len(commits) || p.Tables[i].LastCommit < commits[0].Timestamp {
		t.Errorf("tables: %+v; the commits say %d rows in %d snapshots", p.Tables, rows, len(commits))
	}
	var all []commitAnswer
	apiRole.getData(t, "/v1/commits?limit=10", &all)
	if len(all) < 2 || len(all) > 10 || !slices.ContainsFunc(all, func(c commitAnswer) bool { return c.Table == "quotes" }) ||
		!slices.IsSortedFunc(all, func(a, b commitAnswer) int { return strings.Compare(b.Timestamp, a.Timestamp) }) {
		t.Errorf("the last commits of every table, newest first: %+v", all)
	}
}

func positive(v *float64) bool { return v != nil && *v > 0 }
