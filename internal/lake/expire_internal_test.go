package lake

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

// Files already gone are not a failure of expiry; anything else is kept.
func TestWithoutMissing(t *testing.T) {
	gone := fmt.Errorf("remove a.parquet: %w", fs.ErrNotExist)
	denied := fmt.Errorf("remove b.parquet: %w", fs.ErrPermission)
	if err := withoutMissing(errors.Join(gone, gone)); err != nil {
		t.Fatalf("only missing files: %v", err)
	}
	if err := withoutMissing(errors.Join(gone, denied)); !errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("kept %v", err)
	}
	if withoutMissing(nil) != nil {
		t.Fatal("nil")
	}
}
