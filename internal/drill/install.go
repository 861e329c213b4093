package drill

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/record"
)

// Env is what a drill runs in: the k2 binary, a directory of its own, the
// repository its runbooks are read from, and the processes it started
// (stopped when it ends).
type Env struct {
	Exe  string // the k2 binary the roles run
	Dir  string // this drill's own directory: data, logs
	Repo string // the repository root (runbooks)
	// Logf reports a drill's progress, a line at a time.
	Logf func(format string, args ...any)
	// Ext are the external services the installation under drill uses
	// (external.go).
	Ext      External
	procs    []*Proc
	cleanups []func()
}

// Cleanup runs fn when the drill ends, before its processes are stopped
// (the latest first).
func (e *Env) Cleanup(fn func()) { e.cleanups = append(e.cleanups, fn) }

// close runs the cleanups and stops every process still running.
func (e *Env) close() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	var wg sync.WaitGroup
	for _, p := range e.procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.Stop() }()
	}
	wg.Wait()
}

// Install is a K2 installation under drill: its settings and processes.
type Install struct {
	// Settings are the installation's K2_* variables (NAME=value), what a
	// host's environment file would hold: every role started and every
	// runbook block run gets them.
	Settings          []string
	DataDir           string
	Brokers, Registry string
	// TopicPrefix is the installation's --topic-prefix (K2_TOPIC_PREFIX),
	// for one sharing a Kafka cluster; the traffic produces under it.
	TopicPrefix string
	// RunID, when set, goes into the traffic's ids after the drill's
	// run name: an external catalog keeps the ids of earlier drills.
	RunID string
	// SinkGroup is the sink's consumer group when the drill names one.
	SinkGroup string
	// Security is the TLS and SASL of an external cluster (zero: plaintext).
	Security bus.Security
	// Lake is where the tables are, for the counts.
	Lake lake.Options
	// Sink's group and the processes, those the installation runs.
	Broker, Sink, API, Up *Proc

	mu sync.Mutex
	lk *lake.Lake
}

// sinkFlags make the sink commit often, so a drill sees it consume
// within a fraction of a second, and rejoin at once after a restart.
var sinkFlags = []string{"--sink-batch-age", "200ms", "--sink-instance-id", "drill-sink"}

// newInstall lays out an embedded installation under e.Dir: data
// directory, broker and registry addresses, settings.
func (e *Env) newInstall() (*Install, error) {
	kafka, err := freeAddr()
	if err != nil {
		return nil, err
	}
	reg, err := freeAddr()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(e.Dir, "data")
	in := &Install{DataDir: data, Brokers: kafka, Registry: "http://" + reg,
		Lake: lake.Options{Catalog: filepath.Join(data, "catalog.db"), Warehouse: filepath.Join(data, "warehouse")}}
	in.Settings = []string{
		"K2_DATA_DIR=" + data,
		"K2_LOG_LEVEL=info",
		"K2_BROKER_LISTEN=" + kafka,
		"K2_REGISTRY_LISTEN=" + reg,
		"K2_BROKERS=" + kafka,
		"K2_REGISTRY=" + in.Registry,
	}
	e.Cleanup(func() { in.closeLake() })
	return in, nil
}

// SetWarehouse moves the installation's warehouse (before any role
// starts), e.g. onto a volume of its own.
func (in *Install) SetWarehouse(dir string) {
	in.Lake.Warehouse = dir
	in.Settings = append(in.Settings, "K2_WAREHOUSE="+dir)
}

// Distributed starts the embedded installation as separate roles:
// `k2 broker` (Kafka and the schema registry), `k2 sink` and, with api,
// `k2 api`. Before starting, prepare may adjust the installation (its
// warehouse…); nil for none.
func (e *Env) Distributed(ctx context.Context, api bool, prepare func(*Install) error) (*Install, error) {
	in, err := e.newInstall()
	if err != nil {
		return nil, err
	}
	if prepare != nil {
		if err := prepare(in); err != nil {
			return nil, err
		}
	}
	if in.Broker, err = e.startRole(ctx, in, "broker"); err != nil {
		return nil, err
	}
	// The tables exist before the sink starts, so counts never race their
	// creation.
	if _, err := in.lake(ctx); err != nil {
		return nil, err
	}
	if in.Sink, err = e.startRole(ctx, in, "sink", sinkFlags...); err != nil {
		return nil, err
	}
	if api {
		if in.API, err = e.startRole(ctx, in, "api"); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// Up starts the installation as one `k2 up` (broker, registry, sink, API
// and maintenance in one process), without a feed of its own: the drill's
// traffic is the feed.
func (e *Env) Up(ctx context.Context) (*Install, error) {
	in, err := e.newInstall()
	if err != nil {
		return nil, err
	}
	in.Up, err = e.startRole(ctx, in, "up", append([]string{"--feed", "none"}, sinkFlags...)...)
	return in, err
}

// startRole starts `k2 ROLE` of the installation on an HTTP address of
// its own.
func (e *Env) startRole(ctx context.Context, in *Install, role string, flags ...string) (*Proc, error) {
	http, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := append([]string{role, "--http-listen", http}, flags...)
	return e.Start(ctx, role, http, in.Settings, args...)
}

// Ready checks /ready of every process of the installation.
func (in *Install) Ready(ctx context.Context) error {
	for _, p := range []*Proc{in.Up, in.Broker, in.Sink, in.API} {
		if p == nil {
			continue
		}
		if err := p.Ready(ctx); err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
	}
	return nil
}

// lake opens the installation's lake once.
func (in *Install) lake(ctx context.Context) (*lake.Lake, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.lk != nil {
		return in.lk, nil
	}
	o := in.Lake
	o.Tables = record.Tables()
	l, err := lake.Open(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("open the lake (catalog %s, warehouse %s): %w", o.Catalog, o.Warehouse, err)
	}
	in.lk = l
	return l, nil
}

func (in *Install) closeLake() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.lk != nil {
		in.lk.Close()
		in.lk = nil
	}
}

// StoredRows is the trades table's row count from its current snapshot:
// cheap, for watching the sink commit.
func (in *Install) StoredRows(ctx context.Context) (int64, error) {
	l, err := in.lake(ctx)
	if err != nil {
		return 0, err
	}
	tbl, err := l.Load(ctx, record.Trade.Table.Name)
	if err != nil {
		return 0, err
	}
	var n int64
	if snap := tbl.CurrentSnapshot(); snap != nil && snap.Summary != nil {
		fmt.Sscan(snap.Summary.Properties["total-records"], &n)
	}
	return n, nil
}

// Consuming returns a check that passes once the trades table holds more
// rows than it does now: the sink consumes and commits again.
func (in *Install) Consuming(ctx context.Context) func(context.Context) error {
	base, _ := in.StoredRows(ctx)
	return func(ctx context.Context) error {
		n, err := in.StoredRows(ctx)
		if err != nil {
			return err
		}
		if n <= base {
			return fmt.Errorf("no rows committed since the restart (%d stored)", n)
		}
		return nil
	}
}

// WaitRecovered polls the checks every 50 ms until all pass at once and
// returns when that was, or the last failure after timeout.
func WaitRecovered(ctx context.Context, timeout time.Duration, checks ...func(context.Context) error) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		var err error
		for _, c := range checks {
			if err = c(ctx); err != nil {
				break
			}
		}
		if err == nil {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("not recovered within %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitDetected polls check every 20 ms until it fails (the fault shows)
// and returns when, or the zero time after timeout.
func WaitDetected(ctx context.Context, timeout time.Duration, check func(context.Context) error) time.Time {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if check(ctx) != nil {
			return time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}
}
