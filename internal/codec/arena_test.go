package codec

import (
	"context"
	"strings"
	"testing"
	"unsafe"
)

// Text handed out by an arena stays as it was while the arena fills more
// blocks, repeated text is interned once, and decoding into an arena gives
// what decoding alone does.
func TestArenaKeepsText(t *testing.T) {
	t.Parallel()
	var a Arena
	var got, want []string
	for i := range 20_000 {
		s := strings.Repeat(string(rune('a'+i%26)), i%40)
		got = append(got, a.String([]byte(s)))
		want = append(want, s)
	}
	big := strings.Repeat("x", arenaBlock)
	got, want = append(got, a.String([]byte(big))), append(want, big)
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("string %d changed: %q, want %q", i, got[i], want[i])
		}
	}

	x, y := a.Intern([]byte("BTCUSDT")), a.Intern([]byte("BTCUSDT"))
	if x != "BTCUSDT" || unsafe.StringData(x) != unsafe.StringData(y) {
		t.Fatalf("interned %q and %q apart", x, y)
	}

	d, _ := newTestDecoder(nil)
	ctx := context.Background()
	for _, tr := range tradeCases() {
		msg := must(AppendTrade(nil, idTrade, &tr))
		plain, _, err := d.Trade(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		var in = fullTrade() // every field overwritten
		if _, err := d.TradeInto(ctx, msg, &in, &a); err != nil {
			t.Fatal(err)
		}
		clear(msg) // the arena holds its own copy
		equal(t, "decoded into an arena", in, plain)
	}
}
