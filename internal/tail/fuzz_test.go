package tail

import "testing"

// Any Last-Event-ID reads as a position K2 issued, or an error; never a
// panic, never a negative offset.
func FuzzEventID(f *testing.F) {
	s := &Sub{pos: map[tp]int64{{"market.crypto.trades.binance", 0}: 42, {"market.crypto.trades.binance", 3}: 7}}
	f.Add(s.id())
	f.Add("")
	f.Add("WyJhLzE9MiJd")
	f.Fuzz(func(t *testing.T, id string) {
		pos, err := parseID(id)
		if err == nil {
			for k, off := range pos {
				if off < 0 || k.topic == "" && len(pos) == 0 {
					t.Fatalf("%q: %v", id, pos)
				}
			}
		}
	})
}
