package main

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/replay"
)

func newReplayServerCmd(a *app) *cobra.Command {
	var (
		files        []string
		listen       string
		speed        string
		loops        int
		disconnectAt []int
		outage       int
		pingInterval time.Duration
		exitWhenDone bool
	)
	cmd := &cobra.Command{
		Use:   "replay-server --file CAPTURE [--file CAPTURE…]",
		Short: "Serve a recorded exchange capture over a local WebSocket that speaks the exchange's protocol",
		Long: `replay-server plays recorded frames (Binance recorder or cryptofeed captures,
Kraken v2 JSON lines; gzip or not) to every client on one shared timeline, as
the exchange did: at the recorded pace times --speed, or as fast as the slowest
client takes them (--speed max, which waits for a first subscriber and blocks
rather than dropping). It answers the exchange's subscribe requests and pings
like the exchange (Binance: /stream?streams=…, /ws, and REST
/api/v3/historicalTrades for what was played; Kraken: /v2 with status,
heartbeats and pong), so feeds are tested and demos run offline:

  k2 replay-server --file spot_btcusdt_20240808.gz --file spot_btcusdt_20240809.gz --listen 127.0.0.1:9443 --speed 10x
  k2 up --feed binance --feed-symbols BTCUSDT --feed-url ws://127.0.0.1:9443

--disconnect-at and --outage-frames force a disconnect mid-stream (a fault drill).
/health and /metrics are served on --listen too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return fmt.Errorf("--file is required: a capture such as ../shared/data/binance/ws/spot_btcusdt_20240808.gz")
			}
			sp, err := replay.ParseSpeed(speed)
			if err != nil {
				return fmt.Errorf("--speed: %w", err)
			}
			c, err := replay.Load(files...)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen %s: %w", listen, err)
			}
			var srv *replay.Server
			reg, health := replayMetrics(func() replay.Stats { return srv.Stats() })
			srv = replay.New(c, replay.Options{Speed: sp, Loops: loops, DisconnectAt: disconnectAt, OutageFrames: outage,
				PingInterval: pingInterval, Logger: a.log,
				Mount: map[string]http.Handler{"GET /metrics": reg.Handler(), "GET /health": health.Live(), "GET /ready": health.Handler()}})
			defer srv.Close()
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			path := map[string]string{replay.Binance: "", replay.Kraken: "/v2"}[c.Exchange]
			fmt.Fprintf(cmd.OutOrStdout(), "replaying %d %s frames on ws://%s%s at speed %s\n", len(c.Frames), c.Exchange, ln.Addr(), path, speed)
			ctx := cmd.Context()
			done := srv.Done()
			for {
				select {
				case <-ctx.Done():
					return nil
				case err := <-errc:
					return err
				case <-done:
					st := srv.Stats()
					fmt.Fprintf(cmd.OutOrStdout(), "capture played: %d frames, %d sent over %d connections, %d forced disconnects, %d REST requests\n",
						st.Played, st.Sent, st.Accepted, st.Forced, st.REST)
					if exitWhenDone {
						return nil
					}
					done = nil
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&files, "file", nil, "capture file, repeatable (consecutive days join up; several instruments interleave by time)")
	f.StringVar(&listen, "listen", "127.0.0.1:9443", "address to serve on")
	f.StringVar(&speed, "speed", "1x", "recorded pace times this factor (10x, 0.5x), or max")
	f.IntVar(&loops, "loops", 1, "play the capture this many times, ids continuing (negative: forever)")
	f.IntSliceVar(&disconnectAt, "disconnect-at", nil, "frame positions at which every client is disconnected")
	f.IntVar(&outage, "outage-frames", 0, "frames played to nobody after each forced disconnect")
	f.DurationVar(&pingInterval, "ping-interval", 20*time.Second, "how often Binance clients are pinged (they must answer within a minute)")
	f.BoolVar(&exitWhenDone, "exit-when-done", false, "exit once the capture has been played")
	return cmd
}

// replayMetrics counts what a replay server does, read from its Stats at
// each scrape.
func replayMetrics(stats func() replay.Stats) (*ops.Registry, *ops.Health) {
	reg := ops.NewRegistry()
	for _, m := range []struct {
		name, help string
		value      func(replay.Stats) int64
	}{
		{"k2_replay_frames_played_total", "Timeline positions played, outage frames included.", func(s replay.Stats) int64 { return s.Played }},
		{"k2_replay_frames_sent_total", "Frames written, summed over connections.", func(s replay.Stats) int64 { return s.Sent }},
		{"k2_replay_connections_total", "WebSocket connections accepted.", func(s replay.Stats) int64 { return s.Accepted }},
		{"k2_replay_forced_disconnects_total", "Connections closed by --disconnect-at.", func(s replay.Stats) int64 { return s.Forced }},
		{"k2_replay_rest_requests_total", "REST requests answered.", func(s replay.Stats) int64 { return s.REST }},
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.name, Help: m.help},
			func() float64 { return float64(m.value(stats())) }))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "k2_replay_clients", Help: "Connections receiving frames now."},
		func() float64 { return float64(stats().Clients) }))
	return reg, ops.NewHealth("replay-server")
}
