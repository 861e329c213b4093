package lake

import (
	"strconv"

	"github.com/apache/iceberg-go/table"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/ops"
)

// metrics are a Lake's writer metrics: the names are the seed report's
// (P1.5) so dashboards and alert rules carry over.
type metrics struct {
	transactions    *prometheus.CounterVec // status, table
	transactionRows *prometheus.HistogramVec
	rowsWritten     *prometheus.CounterVec
	writeDuration   *prometheus.HistogramVec
	writeErrors     *prometheus.CounterVec   // table, error_type
	commitFailures  *prometheus.CounterVec   // table, reason: each refusal, retried conflicts included
	batchSize       *prometheus.HistogramVec // rows handed to a commit, before dedup
	filesWritten    *prometheus.CounterVec
	bytesWritten    *prometheus.CounterVec
	duplicates      *prometheus.CounterVec
	orphansRemoved  *prometheus.CounterVec
	// What the table holds as of its current snapshot, and when that
	// snapshot was committed.
	tableRows  *prometheus.GaugeVec
	tableFiles *prometheus.GaugeVec
	tableBytes *prometheus.GaugeVec
	lastCommit *prometheus.GaugeVec
}

// commitFailureReasons are the reason values of k2_iceberg_commit_failures_total.
var commitFailureReasons = []string{"conflict", "catalog"}

// writeErrorTypes are the error_type values of k2_iceberg_write_errors_total.
var writeErrorTypes = []string{"commit_conflict", "catalog", "storage", "schema", "canceled", "other"}

func newMetrics(reg prometheus.Registerer, tables []TableDef) *metrics {
	f := ops.NewMetrics(reg)
	m := &metrics{
		transactions:    f.CounterVec("k2_iceberg_transactions_total", "Iceberg commits by outcome (success, failed) and table.", "status", "table"),
		transactionRows: f.HistogramVec("k2_iceberg_transaction_rows", "Rows per committed Iceberg transaction.", ops.RowBuckets, "table"),
		rowsWritten:     f.CounterVec("k2_iceberg_rows_written_total", "Rows committed to Iceberg tables.", "table"),
		writeDuration:   f.HistogramVec("k2_iceberg_write_duration_seconds", "Time to write data files and commit one batch.", ops.StorageBuckets, "table"),
		writeErrors:     f.CounterVec("k2_iceberg_write_errors_total", "Failed Iceberg writes by error type (commit_conflict, catalog, storage, schema, canceled, other).", "table", "error_type"),
		commitFailures:  f.CounterVec("k2_iceberg_commit_failures_total", "Iceberg commits the catalog refused, retried conflicts included, by reason (conflict, catalog).", "table", "reason"),
		batchSize:       f.HistogramVec("k2_iceberg_batch_size", "Rows handed to one commit, before duplicates are dropped.", ops.RowBuckets, "table"),
		filesWritten:    f.CounterVec("k2_iceberg_files_written_total", "Data files added by committed transactions.", "table"),
		bytesWritten:    f.CounterVec("k2_iceberg_bytes_written_total", "Bytes of data files added by committed transactions.", "table"),
		duplicates:      f.CounterVec("k2_iceberg_duplicates_dropped_total", "Rows not written because their key was already stored or repeated in the batch.", "table"),
		orphansRemoved:  f.CounterVec("k2_iceberg_orphan_files_removed_total", "Data files of failed commits deleted by the writer.", "table"),
		tableRows:       f.GaugeVec("k2_iceberg_table_rows", "Rows in the table's current snapshot.", "table"),
		tableFiles:      f.GaugeVec("k2_iceberg_table_data_files", "Data files in the table's current snapshot.", "table"),
		tableBytes:      f.GaugeVec("k2_iceberg_table_bytes", "Bytes of data files in the table's current snapshot.", "table"),
		lastCommit:      f.GaugeVec("k2_iceberg_last_commit_timestamp_seconds", "When the table's current snapshot was committed (Unix seconds; 0 for an empty table).", "table"),
	}
	// Every series at zero from the start: rate() and alerts see a table
	// before its first commit.
	for _, d := range tables {
		t := d.Name
		m.transactions.WithLabelValues("success", t)
		m.transactions.WithLabelValues("failed", t)
		for _, e := range writeErrorTypes {
			m.writeErrors.WithLabelValues(t, e)
		}
		for _, v := range []*prometheus.CounterVec{m.rowsWritten, m.filesWritten, m.bytesWritten, m.duplicates, m.orphansRemoved} {
			v.WithLabelValues(t)
		}
		for _, r := range commitFailureReasons {
			m.commitFailures.WithLabelValues(t, r)
		}
		m.transactionRows.WithLabelValues(t)
		m.batchSize.WithLabelValues(t)
		m.writeDuration.WithLabelValues(t)
		for _, v := range []*prometheus.GaugeVec{m.tableRows, m.tableFiles, m.tableBytes, m.lastCommit} {
			v.WithLabelValues(t)
		}
	}
	return m
}

// observe sets a table's gauges from its current snapshot.
func (m *metrics) observe(name string, tbl *table.Table) {
	s := tbl.CurrentSnapshot()
	if s == nil {
		return
	}
	if s.Summary != nil {
		p := s.Summary.Properties
		for _, g := range []struct {
			v   *prometheus.GaugeVec
			key string
		}{{m.tableRows, "total-records"}, {m.tableFiles, "total-data-files"}, {m.tableBytes, "total-files-size"}} {
			if n, err := strconv.ParseFloat(p[g.key], 64); err == nil {
				g.v.WithLabelValues(name).Set(n)
			}
		}
	}
	m.lastCommit.WithLabelValues(name).Set(float64(s.TimestampMs) / 1000)
}
