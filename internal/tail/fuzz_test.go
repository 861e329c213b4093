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
		pos, err := parseID(id, map[uint32]string{topicHash("market.crypto.trades.binance"): "market.crypto.trades.binance"})
		if err == nil {
			for k, off := range pos {
				if off < 0 || k.topic == "" && len(pos) == 0 {
					t.Fatalf("%q: %v", id, pos)
				}
			}
		}
	})
}

// An event id reads back as the position it encodes, in about 10 bytes a
// partition; a topic the tail does not know is left out.
func TestEventIDRoundTrip(t *testing.T) {
	pos := map[tp]int64{{"market.crypto.trades.binance", 0}: 42, {"market.crypto.trades.binance", 5}: 1 << 40, {"market.crypto.trades.kraken", 2}: 0}
	s := &Sub{pos: pos}
	id := s.id()
	if len(id) > 16*len(pos) {
		t.Errorf("id of %d partitions is %d bytes", len(pos), len(id))
	}
	topics := map[uint32]string{topicHash("market.crypto.trades.binance"): "market.crypto.trades.binance",
		topicHash("market.crypto.trades.kraken"): "market.crypto.trades.kraken"}
	got, err := parseID(id, topics)
	if err != nil || len(got) != len(pos) {
		t.Fatalf("%v %v", got, err)
	}
	for k, v := range pos {
		if got[k] != v {
			t.Errorf("%v: %d, want %d", k, got[k], v)
		}
	}
	delete(topics, topicHash("market.crypto.trades.kraken"))
	if got, _ := parseID(id, topics); len(got) != 2 {
		t.Errorf("with kraken unknown: %v", got)
	}
}
