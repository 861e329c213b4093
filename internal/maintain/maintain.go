// Package maintain keeps the tables healthy while they are written, so a
// lake left alone for a month stays fast and small: it compacts small
// files, rewrites manifests, expires snapshots on a retention policy and
// removes orphaned files, one table at a time, on a schedule. It runs
// inside k2 up and as the k2 maintain role, beside running sinks: every
// commit it makes is checked against the table it lands on and carries the
// table's stream offsets forward, so a sink never loses a commit or its
// place, and a query's answer never changes.
package maintain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/ops"
)

// Options set up a Maintainer (zero settings take config.Default's).
type Options struct {
	config.Maintain
	Tables []string // the tables to maintain
	// Owner names this maintainer in the tables' leases (default host:pid).
	Owner      string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Maintainer runs maintenance cycles over the tables.
type Maintainer struct {
	lake    *lake.Lake
	o       Options
	m       *metrics
	log     *slog.Logger
	orphans map[string]time.Time // when each table's orphans were last removed
}

// New returns a maintainer of l's tables.
func New(l *lake.Lake, o Options) *Maintainer {
	d := config.Default().Maintain
	config.Or(&o.Every, d.Every)
	config.Or(&o.OrphanEvery, d.OrphanEvery)
	config.Or(&o.MetadataMinAge, d.MetadataMinAge)
	if o.Owner == "" {
		host, _ := os.Hostname()
		o.Owner = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Maintainer{lake: l, o: o, m: newMetrics(o.Registerer, o.Tables), log: o.Logger.With("owner", o.Owner), orphans: map[string]time.Time{}}
}

// Run maintains every table each Every until ctx ends. A failed cycle is
// logged and counted; the next one tries again.
func (m *Maintainer) Run(ctx context.Context) error {
	m.log.Info("maintenance started", "every", m.o.Every, "tables", strings.Join(m.o.Tables, ","))
	t := time.NewTicker(m.o.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for _, name := range m.o.Tables {
			if ctx.Err() != nil {
				return nil
			}
			rep, err := m.Cycle(ctx, name)
			switch {
			case err != nil && ctx.Err() == nil:
				m.log.Warn("maintenance cycle failed; the next one tries again", "table", name, "error", err)
			case err == nil && rep.Skipped == "":
				m.log.Log(ctx, ops.LevelRoutine, "maintenance cycle", "table", name, "did", rep.summary())
			}
		}
	}
}

// Report is what one cycle did to a table.
type Report struct {
	Table     string              `json:"table"`
	Skipped   string              `json:"skipped,omitempty"` // why nothing was done
	Compact   lake.CompactResult  `json:"compact"`
	Manifests lake.ManifestResult `json:"manifests"`
	Expire    lake.ExpireResult   `json:"expire"`
	Orphans   *lake.OrphanResult  `json:"orphans,omitempty"` // on the cycles that look for them
	// StaleMetadata counts metadata files nothing references, removed.
	StaleMetadata int              `json:"stale_metadata"`
	Status        lake.TableStatus `json:"status"`
	Errors        []string         `json:"errors,omitempty"`
}

// leaseFor is how long a cycle may hold a table: long past any cycle, so
// that a maintainer that died frees its tables within minutes.
func (m *Maintainer) leaseFor() time.Duration { return max(10*time.Minute, 3*m.o.Every) }

// Cycle maintains one table now, if no other maintainer holds it:
// compaction of what is due, a manifest rewrite when there are many,
// snapshot expiry, and orphan removal every OrphanEvery.
func (m *Maintainer) Cycle(ctx context.Context, name string) (Report, error) {
	rep := Report{Table: name}
	ok, err := m.lake.AcquireLease(ctx, name, m.o.Owner, m.leaseFor())
	if err != nil {
		return rep, err
	}
	if !ok {
		rep.Skipped = "another maintainer holds the table"
		for _, t := range tasks {
			m.m.runs.WithLabelValues(name, t, "leased_elsewhere").Inc()
		}
		return rep, nil
	}
	var errs []error
	step := func(task string, fn func() error) {
		if ctx.Err() != nil {
			return
		}
		start := time.Now()
		err := fn()
		if err != nil && ctx.Err() != nil {
			errs = append(errs, err) // stopped, not failed: not counted
			return
		}
		m.m.duration.WithLabelValues(task).Observe(time.Since(start).Seconds())
		result := "success"
		if err != nil {
			result = "failed"
			errs = append(errs, err)
			rep.Errors = append(rep.Errors, task+": "+err.Error())
		}
		m.m.runs.WithLabelValues(name, task, result).Inc()
	}
	o := m.o.Maintain
	step(taskCompact, func() (err error) {
		rep.Compact, err = m.lake.Compact(ctx, name, lake.CompactOptions{Due: true, MaxRows: o.CompactMaxRows,
			SmallFileBytes: o.CompactSmallFileBytes, QuietAfter: o.CompactQuietAfter, FanIn: o.CompactFanIn, Share: o.CompactShare})
		if err == nil && rep.Compact.SnapshotAfter != 0 {
			m.m.compacted.WithLabelValues(name).Add(float64(rep.Compact.FilesBefore))
			m.m.rewritten.WithLabelValues(name).Add(float64(rep.Compact.Rows))
		}
		return err
	})
	step(taskManifests, func() (err error) {
		rep.Manifests, err = m.lake.RewriteManifests(ctx, name, o.MaxManifests, false)
		return err
	})
	step(taskExpire, func() (err error) {
		rep.Expire, err = m.lake.ExpireSnapshots(ctx, name, lake.ExpireOptions{OlderThan: o.ExpireOlderThan,
			RetainLast: o.RetainLast, DenseFor: o.RetainDenseFor, SparseEvery: o.RetainSparseEvery})
		m.m.expired.WithLabelValues(name).Add(float64(len(rep.Expire.Expired)))
		return err
	})
	// Some commits leave the metadata files they superseded (about one in
	// three in a soak: files a commit drops from the metadata log are
	// deleted only when its own base listed them); they are small, but
	// one a minute adds up, so they go every cycle.
	step(taskOrphans, func() error {
		r, err := m.lake.RemoveOrphans(ctx, name, lake.OrphanOptions{OlderThan: o.MetadataMinAge, MetadataOnly: true})
		rep.StaleMetadata = r.Deleted
		m.m.orphans.WithLabelValues(name).Add(float64(r.Deleted))
		return err
	})
	if time.Since(m.orphans[name]) >= m.o.OrphanEvery {
		step(taskOrphans, func() error {
			r, err := m.lake.RemoveOrphans(ctx, name, lake.OrphanOptions{OlderThan: o.OrphanMinAge})
			rep.Orphans = &r
			m.m.orphans.WithLabelValues(name).Add(float64(r.Deleted))
			if err == nil {
				m.orphans[name] = time.Now()
			}
			return err
		})
	}
	if st, err := m.lake.Status(ctx, name, o.CompactSmallFileBytes); err == nil {
		rep.Status = st
		m.m.observe(name, st)
	} else {
		errs = append(errs, err)
	}
	err = errors.Join(errs...)
	if err == nil {
		m.m.lastSuccess.WithLabelValues(name).SetToCurrentTime()
	}
	// The lease is released with the outcome, which k2 lake status shows.
	if rerr := m.lake.ReleaseLease(context.WithoutCancel(ctx), name, m.o.Owner, rep.summary()); rerr != nil {
		err = errors.Join(err, rerr)
	}
	return rep, err
}

// summary says in a line what a cycle did.
func (r Report) summary() string {
	var parts []string
	if r.Compact.SnapshotAfter != 0 {
		parts = append(parts, fmt.Sprintf("compacted %d files into %d", r.Compact.FilesBefore, r.Compact.FilesAfter))
	}
	if r.Manifests.After != r.Manifests.Before {
		parts = append(parts, fmt.Sprintf("manifests %d→%d", r.Manifests.Before, r.Manifests.After))
	}
	if n := len(r.Expire.Expired); n > 0 {
		parts = append(parts, fmt.Sprintf("expired %d snapshots", n))
	}
	if r.Orphans != nil && r.Orphans.Deleted > 0 {
		parts = append(parts, fmt.Sprintf("removed %d orphans", r.Orphans.Deleted))
	}
	if r.StaleMetadata > 0 {
		parts = append(parts, fmt.Sprintf("removed %d stale metadata files", r.StaleMetadata))
	}
	if len(r.Errors) > 0 {
		parts = append(parts, "failed: "+strings.Join(r.Errors, "; "))
	}
	if len(parts) == 0 {
		return "nothing to do"
	}
	return strings.Join(parts, ", ")
}
