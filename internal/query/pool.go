package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/ops"
)

// poolMetrics are the pool's (the seed report's P1.2 names).
type poolMetrics struct {
	size, active, available prometheus.Gauge
	wait                    prometheus.Histogram
	timeouts, createErrors  prometheus.Counter
}

func newPoolMetrics(f ops.Metrics) *poolMetrics {
	return &poolMetrics{
		size:         f.Gauge("k2_connection_pool_size", "DuckDB connections the query pool may hold."),
		active:       f.Gauge("k2_connection_pool_active_connections", "DuckDB connections running a query."),
		available:    f.Gauge("k2_connection_pool_available_connections", "Pool slots free for a query."),
		wait:         f.Histogram("k2_connection_pool_wait_time_seconds", "Time a query waited for a connection.", ops.LatencyBuckets),
		timeouts:     f.Counter("k2_connection_pool_acquisition_timeouts_total", "Queries refused because no connection freed up in time."),
		createErrors: f.Counter("k2_connection_pool_creation_errors_total", "Failures to open a DuckDB connection."),
	}
}

// ErrPoolExhausted is returned when every connection stayed busy for the
// whole acquire timeout.
var ErrPoolExhausted = errors.New("query pool exhausted")

// Pool hands out at most Size DuckDB connections of one database. All
// connections share the database's settings and buffer memory, so the pool
// bounds concurrency, not memory; the memory limit does that.
type Pool struct {
	db      *sql.DB
	size    int
	timeout time.Duration
	slots   chan struct{}
	m       *poolMetrics

	mu          sync.Mutex
	idle        []*sql.Conn // LIFO: the most recently used connection has warm caches
	active      int
	peak        int
	acquired    int64
	created     int64
	waitTotal   time.Duration
	timeoutsCnt int64
	waiting     int // queries waiting for a connection now
}

// PoolStats is a snapshot of the pool's state.
type PoolStats struct {
	PoolSize               int     `json:"pool_size"`
	ActiveConnections      int     `json:"active_connections"`
	AvailableConnections   int     `json:"available_connections"`
	TotalCreated           int64   `json:"total_created"`
	TotalAcquisitions      int64   `json:"total_acquisitions"`
	AcquisitionTimeouts    int64   `json:"acquisition_timeouts"`
	AverageWaitTimeSeconds float64 `json:"average_wait_time_seconds"`
	PeakUtilization        int     `json:"peak_utilization"`
	UtilizationPercentage  float64 `json:"utilization_percentage"`
	AcquireTimeoutSeconds  float64 `json:"acquire_timeout_seconds"`
	// Waiting are the queries waiting for a connection now: past zero the
	// pool is saturated.
	Waiting int `json:"waiting"`
}

func newPool(db *sql.DB, size int, timeout time.Duration, m *poolMetrics) *Pool {
	p := &Pool{db: db, size: size, timeout: timeout, slots: make(chan struct{}, size), m: m}
	m.size.Set(float64(size))
	m.available.Set(float64(size))
	return p
}

// Conn is a connection lent by the pool; Release returns it.
type Conn struct {
	*sql.Conn
	pool *Pool
	bad  bool
}

// Acquire waits up to the pool's timeout (or ctx) for a connection.
func (p *Pool) Acquire(ctx context.Context) (*Conn, error) {
	start := time.Now()
	select {
	case p.slots <- struct{}{}: // a free connection: no wait
	default:
		if err := p.wait(ctx); err != nil {
			return nil, err
		}
	}
	wait := time.Since(start)
	p.m.wait.Observe(wait.Seconds())

	p.mu.Lock()
	var c *sql.Conn
	if n := len(p.idle); n > 0 {
		c, p.idle = p.idle[n-1], p.idle[:n-1]
	}
	p.mu.Unlock()
	if c == nil {
		var err error
		if c, err = p.db.Conn(ctx); err != nil {
			<-p.slots
			p.m.createErrors.Inc()
			return nil, fmt.Errorf("open DuckDB connection: %w", err)
		}
		p.mu.Lock()
		p.created++
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.active++
	p.acquired++
	p.waitTotal += wait
	p.peak = max(p.peak, p.active)
	active := p.active
	p.mu.Unlock()
	p.m.active.Set(float64(active))
	p.m.available.Set(float64(p.size - active))
	return &Conn{Conn: c, pool: p}, nil
}

// wait waits up to the pool's timeout (or ctx) for a connection to free,
// counted among the waiting meanwhile.
func (p *Pool) wait(ctx context.Context) error {
	p.mu.Lock()
	p.waiting++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.waiting--
		p.mu.Unlock()
	}()
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-timer.C:
		p.mu.Lock()
		p.timeoutsCnt++
		p.mu.Unlock()
		p.m.timeouts.Inc()
		return fmt.Errorf("%w: all %d connections busy for %s; retry later or raise --query-pool-size", ErrPoolExhausted, p.size, p.timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Release returns the connection; a connection marked bad is closed.
func (c *Conn) Release() {
	p := c.pool
	p.mu.Lock()
	if c.bad {
		c.Conn.Close()
	} else {
		p.idle = append(p.idle, c.Conn)
	}
	p.active--
	active := p.active
	p.mu.Unlock()
	<-p.slots
	p.m.active.Set(float64(active))
	p.m.available.Set(float64(p.size - active))
}

// Stats reports the pool's counters.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := PoolStats{
		PoolSize: p.size, ActiveConnections: p.active, AvailableConnections: p.size - p.active,
		TotalCreated: p.created, TotalAcquisitions: p.acquired, AcquisitionTimeouts: p.timeoutsCnt,
		PeakUtilization: p.peak, AcquireTimeoutSeconds: p.timeout.Seconds(),
		UtilizationPercentage: 100 * float64(p.active) / float64(p.size),
		Waiting:               p.waiting,
	}
	if p.acquired > 0 {
		s.AverageWaitTimeSeconds = p.waitTotal.Seconds() / float64(p.acquired)
	}
	return s
}

func (p *Pool) close() {
	p.mu.Lock()
	for _, c := range p.idle {
		c.Close()
	}
	p.idle = nil
	p.mu.Unlock()
}
