package lake

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/ops"
)

// Writer metrics: the names are the seed report's (P1.5) so dashboards and
// alert rules carry over.
var (
	mTransactions = ops.Factory.NewCounterVec(prometheus.CounterOpts{
		Name: "k2_iceberg_transactions_total",
		Help: "Iceberg commits by outcome (success, failed) and table.",
	}, []string{"status", "table"})
	mTransactionRows = ops.Factory.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "k2_iceberg_transaction_rows",
		Help:    "Rows per committed Iceberg transaction.",
		Buckets: ops.RowBuckets,
	}, []string{"table"})
	mRowsWritten = ops.Factory.NewCounterVec(prometheus.CounterOpts{
		Name: "k2_iceberg_rows_written_total",
		Help: "Rows committed to Iceberg tables.",
	}, []string{"table"})
	mWriteDuration = ops.Factory.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "k2_iceberg_write_duration_seconds",
		Help:    "Time to write data files and commit one batch.",
		Buckets: ops.StorageBuckets,
	}, []string{"table"})
	mWriteErrors = ops.Factory.NewCounterVec(prometheus.CounterOpts{
		Name: "k2_iceberg_write_errors_total",
		Help: "Failed Iceberg writes by error type (commit_conflict, catalog, storage, schema, canceled, other).",
	}, []string{"table", "error_type"})
	mFilesWritten = ops.Factory.NewCounterVec(prometheus.CounterOpts{
		Name: "k2_iceberg_files_written_total",
		Help: "Data files added by committed transactions.",
	}, []string{"table"})
	mBytesWritten = ops.Factory.NewCounterVec(prometheus.CounterOpts{
		Name: "k2_iceberg_bytes_written_total",
		Help: "Bytes of data files added by committed transactions.",
	}, []string{"table"})
	mDuplicates = ops.Factory.NewCounterVec(prometheus.CounterOpts{
		Name: "k2_iceberg_duplicates_dropped_total",
		Help: "Rows not written because their key was already stored or repeated in the batch.",
	}, []string{"table"})
	mOrphansRemoved = ops.Factory.NewCounterVec(prometheus.CounterOpts{
		Name: "k2_iceberg_orphan_files_removed_total",
		Help: "Data files of failed commits deleted by the writer.",
	}, []string{"table"})
)
