package lake

import (
	"context"
	"fmt"
	"maps"
	"strconv"

	"github.com/apache/iceberg-go/table"
)

// migrate brings a table written by an earlier K2 to FormatVersion: the
// columns a version no longer stores are dropped from the schema (schema
// evolution: no file is rewritten, and time travel to the old snapshots
// still reads them), and the table's properties become this version's.
// One commit; a table already at FormatVersion is left as it is.
func (l *Lake) migrate(ctx context.Context, def TableDef, tbl *table.Table) (*table.Table, error) {
	v := formatVersion(tbl)
	switch {
	case v == FormatVersion:
		return tbl, nil
	case v > FormatVersion:
		return nil, fmt.Errorf("table %s is of format version %d, written by a newer K2; this one writes version %d: upgrade K2", def.FullName(), v, FormatVersion)
	}
	tx := tbl.NewTransaction()
	var dropped []string
	for _, m := range def.Migrations {
		if m.Version <= v {
			continue
		}
		for _, col := range m.Drop {
			if _, ok := tbl.Schema().FindFieldByName(col); !ok {
				continue
			}
			if err := tx.UpdateSchema(true, false).DeleteColumn([]string{col}).Commit(); err != nil {
				return nil, fmt.Errorf("migrate %s: drop %s: %w", def.FullName(), col, err)
			}
			dropped = append(dropped, col)
		}
	}
	props := baseProperties(def.Doc, def.Key)
	delete(props, table.PropertyFormatVersion) // Iceberg's own, set at creation
	maps.DeleteFunc(props, func(k, v string) bool { return tbl.Properties()[k] == v })
	if err := tx.SetProperties(props); err != nil {
		return nil, fmt.Errorf("migrate %s: %w", def.FullName(), err)
	}
	var retired []string
	for _, k := range retiredProperties {
		if _, ok := tbl.Properties()[k]; ok {
			retired = append(retired, k)
		}
	}
	if len(retired) > 0 {
		if err := tx.RemoveProperties(retired); err != nil {
			return nil, fmt.Errorf("migrate %s: %w", def.FullName(), err)
		}
	}
	out, err := tx.Commit(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate %s from format %d to %d: %w", def.FullName(), v, FormatVersion, err)
	}
	l.log.Info("table migrated", "table", def.FullName(), "from_format", v, "to_format", FormatVersion,
		"columns_dropped", dropped, "note", "dropped columns are derived on read; files already written keep them")
	return out, nil
}

// formatVersion is a table's K2 format version (1 when unrecorded).
func formatVersion(tbl *table.Table) int {
	if v, err := strconv.Atoi(tbl.Properties()[FormatVersionProperty]); err == nil {
		return v
	}
	return 1
}
