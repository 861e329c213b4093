package stack

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/feed/binance"
	"github.com/k2-market-data/k2/internal/live"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/testutil"
)

// runbookQuery is one expression of a runbook's promql block: an operator
// pastes each line into Prometheus.
type runbookQuery struct {
	where string // file:line
	expr  string
}

// runbookQueries reads every line of the promql blocks of
// docs/operations/runbooks/*.md.
func runbookQueries(t *testing.T) []runbookQuery {
	t.Helper()
	root := testutil.RepoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "docs", "operations", "runbooks", "*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no runbooks: %v", err)
	}
	var out []runbookQuery
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		in, n := false, 0
		for sc.Scan() {
			n++
			line := strings.TrimSpace(sc.Text())
			switch {
			case !in && line == "```promql":
				in = true
			case in && strings.HasPrefix(line, "```"):
				in = false
			case in && line != "":
				out = append(out, runbookQuery{where: filepath.Base(file) + ":" + strconv.Itoa(n), expr: line})
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// laterSeries are families whose series appear only once there is
// something to count, with their labels: a request shed while the query
// pool is saturated (internal/api, overload.go).
var laterSeries = series{"k2_api_requests_shed_total": {"route": nil}}

// feedSeries are a Binance feed's metrics (k2_binance_…), which k2 up's
// synthetic feed does not have: the runbooks read them by that name.
// A session registers them at zero before it connects.
func feedSeries(t *testing.T) series {
	t.Helper()
	p, err := binance.NewProtocol([]string{"BTCUSDT"}, md.DefaultAssets)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if _, err := live.NewSession(p, live.SessionConfig{Endpoints: []string{"ws://127.0.0.1:1"}, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	return gather(t, reg)
}
