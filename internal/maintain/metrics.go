package maintain

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/ops"
)

// Tasks of a maintenance cycle, the task label of its metrics.
const (
	taskCompact   = "compact"
	taskManifests = "rewrite_manifests"
	taskExpire    = "expire_snapshots"
	taskOrphans   = "remove_orphans"
)

var tasks = []string{taskCompact, taskManifests, taskExpire, taskOrphans}

// Results of a task, the result label.
var results = []string{"success", "failed", "leased_elsewhere"}

type metrics struct {
	runs        *prometheus.CounterVec   // table, task, result
	duration    *prometheus.HistogramVec // task
	compacted   *prometheus.CounterVec   // table: input files merged
	rewritten   *prometheus.CounterVec   // table: rows rewritten
	expired     *prometheus.CounterVec   // table: snapshots expired
	orphans     *prometheus.CounterVec   // table: orphan files deleted
	lastSuccess *prometheus.GaugeVec     // table
	// What a table looks like after the cycle (lake.TableStatus).
	smallFiles *prometheus.GaugeVec
	debt       *prometheus.GaugeVec
	maxFiles   *prometheus.GaugeVec
	snapshots  *prometheus.GaugeVec
	manifests  *prometheus.GaugeVec
	metadata   *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, tables []string) *metrics {
	f := ops.NewMetrics(reg)
	m := &metrics{
		runs:        f.CounterVec("k2_maintenance_runs_total", "Maintenance tasks run, by table, task (compact, rewrite_manifests, expire_snapshots, remove_orphans) and result (success, failed, leased_elsewhere).", "table", "task", "result"),
		duration:    f.HistogramVec("k2_maintenance_duration_seconds", "Time a maintenance task took.", ops.StorageBuckets, "task"),
		compacted:   f.CounterVec("k2_maintenance_files_compacted_total", "Small data files merged into larger ones.", "table"),
		rewritten:   f.CounterVec("k2_maintenance_rows_rewritten_total", "Rows read and written again by compaction.", "table"),
		expired:     f.CounterVec("k2_maintenance_snapshots_expired_total", "Snapshots removed by the retention policy.", "table"),
		orphans:     f.CounterVec("k2_maintenance_orphan_files_removed_total", "Files no snapshot referenced, deleted.", "table"),
		lastSuccess: f.GaugeVec("k2_maintenance_last_success_timestamp_seconds", "When a maintenance cycle of the table last completed without error (Unix seconds; 0: never).", "table"),
		smallFiles:  f.GaugeVec("k2_iceberg_table_small_files", "Data files under the compaction threshold.", "table"),
		debt:        f.GaugeVec("k2_iceberg_table_small_file_debt", "Small files compaction would remove: all but one per partition.", "table"),
		maxFiles:    f.GaugeVec("k2_iceberg_table_max_files_per_partition", "Data files of the table's most fragmented partition.", "table"),
		snapshots:   f.GaugeVec("k2_iceberg_table_snapshots", "Snapshots in the table's history (time travel reaches them).", "table"),
		manifests:   f.GaugeVec("k2_iceberg_table_manifests", "Manifests of the current snapshot, each read when a query plans.", "table"),
		metadata:    f.GaugeVec("k2_iceberg_table_metadata_bytes", "Size of the table's current metadata file, rewritten by every commit.", "table"),
	}
	for _, t := range tables {
		for _, task := range tasks {
			for _, r := range results {
				m.runs.WithLabelValues(t, task, r)
			}
		}
		for _, v := range []*prometheus.CounterVec{m.compacted, m.rewritten, m.expired, m.orphans} {
			v.WithLabelValues(t)
		}
		for _, v := range []*prometheus.GaugeVec{m.lastSuccess, m.smallFiles, m.debt, m.maxFiles, m.snapshots, m.manifests, m.metadata} {
			v.WithLabelValues(t)
		}
	}
	for _, task := range tasks {
		m.duration.WithLabelValues(task)
	}
	return m
}

// observe sets a table's gauges from its status.
func (m *metrics) observe(table string, st lake.TableStatus) {
	m.smallFiles.WithLabelValues(table).Set(float64(st.SmallFiles))
	m.debt.WithLabelValues(table).Set(float64(st.SmallFileDebt))
	m.maxFiles.WithLabelValues(table).Set(float64(st.MaxFilesPerPartition))
	m.snapshots.WithLabelValues(table).Set(float64(st.Snapshots))
	m.manifests.WithLabelValues(table).Set(float64(st.Manifests))
	m.metadata.WithLabelValues(table).Set(float64(st.MetadataBytes))
}
