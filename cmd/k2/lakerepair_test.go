package main

import (
	"strings"
	"testing"
)

// The repair of a data file itself runs in the data-file-corrupt drill
// (TestFaultDrills) and in internal/sink; here its refusals.
func TestRepairFileErrors(t *testing.T) {
	data := t.TempDir()
	if _, e, code := run(t, "--data-dir", data, "lake", "repair-file", "/srv/k2/nope.parquet"); code == 0 ||
		!strings.Contains(e, "/srv/k2/nope.parquet: no table has this data file, nor dropped it") {
		t.Errorf("unknown file: %d %q", code, e)
	}
	if _, e, code := run(t, "--data-dir", data, "lake", "repair-file", "--dry-run", "/srv/k2/nope.parquet"); code == 0 || !strings.Contains(e, "repair-file has no --dry-run") {
		t.Errorf("--dry-run: %d %q", code, e)
	}
	if _, e, code := run(t, "--data-dir", data, "lake", "repair-file"); code == 0 || !strings.Contains(e, "accepts 1 arg") {
		t.Errorf("no file: %d %q", code, e)
	}
}
