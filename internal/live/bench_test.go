package live

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/feed/binance"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/replay"
	"github.com/k2-market-data/k2/internal/testutil"
)

// BenchmarkBinanceFeed replays the BTCUSDT capture as fast as the feed
// takes it: WebSocket → parse → dedup → Avro → embedded broker. One op is
// one frame (trade or bookTicker).
func BenchmarkBinanceFeed(b *testing.B) {
	dir := testutil.Data(b, "binance", "ws")
	c, err := replay.Load(filepath.Join(dir, "spot_btcusdt_20240808.gz"), filepath.Join(dir, "spot_btcusdt_20240809.gz"))
	if err != nil {
		b.Fatal(err)
	}
	var perLoop int
	for _, f := range c.Frames {
		if strings.HasSuffix(f.Stream, "@trade") || strings.HasSuffix(f.Stream, "@bookTicker") {
			perLoop++
		}
	}
	k := newKafka(b)
	srv := replay.New(c, replay.Options{Loops: b.N/perLoop + 1})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	defer srv.Close()
	p, err := binance.NewProtocol([]string{"BTCUSDT"}, md.DefaultAssets)
	if err != nil {
		b.Fatal(err)
	}
	f, err := NewFeed(p, SessionConfig{Endpoints: []string{"ws" + strings.TrimPrefix(hs.URL, "http")}}, FeedConfig{Producer: k.Prod})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	go func() { done <- f.Run(ctx) }()
	for {
		st := f.Stats()
		if st.Trades+st.Quotes >= int64(b.N) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
}

// BenchmarkSynth produces the synthetic market as fast as it goes into an
// embedded broker. One op is one trade (and half a quote).
func BenchmarkSynth(b *testing.B) {
	k := newKafka(b)
	s, err := NewSynth(k.Prod, SynthConfig{Seed: 1, Rate: 2_000_000, Limit: int64(b.N)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if err := s.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
}
