package record

import (
	"slices"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/k2-market-data/k2/internal/lake"
)

// Each kind's descriptor is one coherent thing: its Avro record and its
// table declare the same fields in the same order (but those the table
// derives), its Arrow columns
// encode every one of them, and its identity columns exist.
func TestEveryKindIsDescribedCoherently(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for i, k := range All {
		s := k.Describe()
		if s.Index() != i || seen[string(s.DataType)] || seen[s.Table.Name] {
			t.Fatalf("%s: index %d or a repeated data type or table", s.Name, s.Index())
		}
		seen[string(s.DataType)], seen[s.Table.Name] = true, true
		var avroFields, tableFields []string
		for _, f := range s.Avro.Avro.(*avro.RecordSchema).Fields() {
			if !slices.Contains(s.Derived, f.Name()) {
				avroFields = append(avroFields, f.Name())
			}
		}
		for _, f := range s.Table.Schema.Fields() {
			tableFields = append(tableFields, f.Name)
			if f.Doc == "" {
				t.Errorf("%s: column %s has no doc", s.Name, f.Name)
			}
		}
		if !slices.Equal(avroFields, tableFields) {
			t.Errorf("%s: Avro fields %v, table columns %v", s.Name, avroFields, tableFields)
		}
		for _, c := range []string{s.Table.Key, s.Table.Symbol, s.Table.Time, s.Table.Sequence} {
			if _, ok := s.Table.Schema.FindFieldByName(c); c != "" && !ok {
				t.Errorf("%s: table declares column %q it does not have", s.Name, c)
			}
		}
		if got, err := ByDataType(s.DataType); err != nil || got != k {
			t.Errorf("ByDataType(%s) = %v %v", s.DataType, got, err)
		}
		if got, err := ByTable(s.Table.Name); err != nil || got != k {
			t.Errorf("ByTable(%s) = %v %v", s.Table.Name, got, err)
		}
	}
	for _, k := range All {
		s := k.Describe()
		if n := len(lake.ArrowSchema(s.Table.Schema).Fields()); k.columns() != n {
			t.Errorf("%s: %d Arrow columns for %d table columns", s.Name, k.columns(), n)
		}
	}
	if _, err := ByDataType("bars"); err == nil {
		t.Error("an unknown data type was found")
	}
}
