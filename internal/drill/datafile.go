package drill

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/apache/iceberg-go/table"

	"github.com/k2-market-data/k2/internal/record"

	"github.com/k2-market-data/k2/internal/config"
)

// The data-file drill tears a Parquet file of the trades table while the
// sink writes and the API answers: queries touching it must fail naming
// it, and the runbook's repair (k2 lake repair-file) must bring back
// exactly its rows.

const dataFileRunbook = "docs/operations/runbooks/data-file-corrupt.md"

func init() {
	register(Drill{Name: "data-file-corrupt", Family: "data-file", Runbook: dataFileRunbook,
		Summary: "tear a Parquet file of the trades table (cut to half its size) while trades flow; queries name it; repair it from Kafka",
		Run:     dataFileDrill})
}

func dataFileDrill(ctx context.Context, e *Env) ([]Row, error) {
	in, err := e.Distributed(ctx, true, nil)
	if err != nil {
		return nil, err
	}
	t, err := warm(ctx, e, in, "file")
	if err != nil {
		return nil, err
	}
	path, rows, err := in.largestDataFile(ctx)
	if err != nil {
		return nil, err
	}
	row := Row{Fault: fmt.Sprintf("cut a data file of %d trades to half its size", rows), Target: ProcessRTO}
	var failures []string
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	row.InjectedAt = time.Now()
	if err := os.Truncate(path, fi.Size()/2); err != nil {
		return nil, err
	}
	e.Logf("cut %s", path)
	// Detected: a query over every trade fails, naming the file.
	out, qerr := e.k2(ctx, in, "query", "symbols")
	row.DetectedAt = time.Now()
	switch {
	case qerr == nil:
		failures = append(failures, "k2 query symbols answered over a damaged file")
	case !strings.Contains(out, path):
		failures = append(failures, "k2 query symbols failed without naming the file: "+lastLine(out))
	default:
		row.Notes = "query: " + lastLine(out)
	}
	if in.apiAnswers(ctx) == nil {
		failures = append(failures, "the API answered /v1/symbols over a damaged file")
	}
	repair := time.Now()
	rout, err := e.RunRunbook(ctx, dataFileRunbook, StepRecover, in, "file="+path)
	if err != nil {
		return nil, err
	}
	row.Notes += "; repair: " + lastLine(rout)
	if row.RecoveredAt, err = WaitRecovered(ctx, recoverTimeout, in.Ready, in.apiAnswers, in.Consuming(ctx)); err != nil {
		failures = append(failures, err.Error())
	} else {
		row.RTO = row.RecoveredAt.Sub(repair)
	}
	return finish(ctx, e, in, t, dataFileRunbook, row, failures)
}

// largestDataFile is the trades table's data file with the most rows, as
// a local path.
func (in *Install) largestDataFile(ctx context.Context) (string, int64, error) {
	l, err := in.lake(ctx)
	if err != nil {
		return "", 0, err
	}
	tbl, err := l.Load(ctx, record.Trade.Table.Name)
	if err != nil {
		return "", 0, err
	}
	tasks, err := tbl.Scan(table.WithSelectedFields("trade_id")).PlanFiles(ctx)
	if err != nil {
		return "", 0, err
	}
	var best string
	var rows int64
	for _, task := range tasks {
		if n := task.File.Count(); n > rows {
			best, rows = strings.TrimPrefix(task.File.FilePath(), "file://"), n
		}
	}
	if best == "" {
		return "", 0, fmt.Errorf("the trades table has no data file")
	}
	return best, rows, nil
}

// k2 runs a one-off k2 command with the installation's settings and
// returns its output, stdout and stderr together.
func (e *Env) k2(ctx context.Context, in *Install, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, e.Exe, args...)
	cmd.Dir = e.Dir
	cmd.Env = append(config.WithoutSettings(os.Environ()), in.Settings...)
	b, err := cmd.CombinedOutput()
	return string(b), err
}
