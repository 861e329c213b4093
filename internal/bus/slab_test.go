package bus

import (
	"bytes"
	"fmt"
	"testing"
)

// Records carved from shared blocks keep their own bytes: messages of
// every length, across block boundaries, longer than a block's room for
// one, each with its key after it.
func TestSlabRecordsKeepTheirMessages(t *testing.T) {
	var s slab
	type want struct{ key, value string }
	var wants []want
	var got [][2][]byte
	for i := range 3000 {
		n := i % 1500 // some longer than slabMessage
		value := bytes.Repeat([]byte{byte('a' + i%26)}, n)
		key := fmt.Sprintf("k%d", i)
		r, err := s.record(key, func(b []byte) ([]byte, error) { return append(b, value...), nil })
		if err != nil {
			t.Fatal(err)
		}
		wants = append(wants, want{key, string(value)})
		got = append(got, [2][]byte{r.Key, r.Value})
		// A producer's later append must not run into the next record.
		if cap(r.Value) != len(r.Value) || cap(r.Key) != len(r.Key) {
			t.Fatalf("record %d: value or key has room past its end", i)
		}
	}
	for i, w := range wants {
		if string(got[i][0]) != w.key || string(got[i][1]) != w.value {
			t.Fatalf("record %d: key %q, value of %d bytes; want %q, %d bytes", i, got[i][0], len(got[i][1]), w.key, len(w.value))
		}
	}
	if _, err := s.record("k", func([]byte) ([]byte, error) { return nil, fmt.Errorf("bad") }); err == nil {
		t.Fatal("an encoding error was not returned")
	}
}
