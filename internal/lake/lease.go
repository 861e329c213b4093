package lake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	sqlcat "github.com/apache/iceberg-go/catalog/sql"
)

// Maintenance of a table is leased, so that one maintainer works on a
// table at a time however many k2 up or k2 maintain processes share the
// catalog. The lease and the outcome of the last run are a row of
// k2_maintenance in the catalog's own database: an atomic upsert takes a
// lease that is free, expired or already the caller's. (Two maintainers
// on one table would be safe, as every commit is checked against the table
// it lands on, but each would redo the other's work.)
const leaseTable = "k2_maintenance"

// MaintenanceState is a table's maintenance lease and last run.
type MaintenanceState struct {
	Owner      string    `json:"owner,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	LastRun    time.Time `json:"last_run,omitzero"`
	LastResult string    `json:"last_result,omitempty"`
}

func (l *Lake) ensureLeaseTable(ctx context.Context) error {
	_, err := l.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+leaseTable+` (
		catalog_name VARCHAR(255) NOT NULL,
		table_name VARCHAR(255) NOT NULL,
		owner VARCHAR(255) NOT NULL DEFAULT '',
		lease_until BIGINT NOT NULL DEFAULT 0,
		last_run BIGINT NOT NULL DEFAULT 0,
		last_result TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (catalog_name, table_name))`)
	if err != nil {
		return fmt.Errorf("maintenance lease table: %w", err)
	}
	return nil
}

// query numbers the placeholders for PostgreSQL.
func (l *Lake) query(q string) string {
	if l.dialect != sqlcat.Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// AcquireLease takes or renews the maintenance lease of a table for owner
// until now+ttl, and reports whether owner holds it.
func (l *Lake) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	if err := l.ensureLeaseTable(ctx); err != nil {
		return false, err
	}
	now := time.Now()
	r, err := l.db.ExecContext(ctx, l.query(`INSERT INTO `+leaseTable+` (catalog_name, table_name, owner, lease_until) VALUES (?, ?, ?, ?)
		ON CONFLICT (catalog_name, table_name) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
		WHERE `+leaseTable+`.lease_until < ? OR `+leaseTable+`.owner = excluded.owner`),
		CatalogName, name, owner, now.Add(ttl).UnixMilli(), now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("maintenance lease of %s: %w", name, err)
	}
	n, err := r.RowsAffected()
	return n == 1, err
}

// ReleaseLease gives up owner's lease of a table and records the run.
func (l *Lake) ReleaseLease(ctx context.Context, name, owner, result string) error {
	_, err := l.db.ExecContext(ctx, l.query(`UPDATE `+leaseTable+` SET lease_until = 0, last_run = ?, last_result = ?
		WHERE catalog_name = ? AND table_name = ? AND owner = ?`),
		time.Now().UnixMilli(), result, CatalogName, name, owner)
	if err != nil {
		return fmt.Errorf("maintenance lease of %s: %w", name, err)
	}
	return nil
}

// Maintenance returns a table's maintenance lease and last run (zero
// when no maintainer has run).
func (l *Lake) Maintenance(ctx context.Context, name string) (MaintenanceState, error) {
	var st MaintenanceState
	if err := l.ensureLeaseTable(ctx); err != nil {
		return st, err
	}
	var until, last int64
	err := l.db.QueryRowContext(ctx, l.query(`SELECT owner, lease_until, last_run, last_result FROM `+leaseTable+`
		WHERE catalog_name = ? AND table_name = ?`), CatalogName, name).Scan(&st.Owner, &until, &last, &st.LastResult)
	if errors.Is(err, sql.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("maintenance state of %s: %w", name, err)
	}
	if until > 0 {
		st.LeaseUntil = time.UnixMilli(until).UTC()
	}
	if last > 0 {
		st.LastRun = time.UnixMilli(last).UTC()
	}
	return st, nil
}
