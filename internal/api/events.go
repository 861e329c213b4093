package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/tail"
)

// heartbeat is how often an idle event stream sends a comment, so
// proxies and clients know it is alive.
const heartbeat = 15 * time.Second

// streamRoute serves GET /v1/stream/{table}: server-sent events of the
// kind's records as the stream brings them, from the tail (never the
// lake), for the symbols asked (symbols=A,B; none: all). Each event's id
// is the stream's position after it: a client reconnecting with
// Last-Event-ID (browsers do it by themselves) gets what followed,
// exactly once, while the tail still holds it; past that it is told with
// an event "gap".
func (s *Server) streamRoute(k record.Any, cols *columns) func(http.ResponseWriter, *http.Request, *params) {
	name := k.Describe().Name
	table := k.Describe().Table.Name
	s.sm.clients.WithLabelValues(table) // at zero before the first client
	s.sm.events.WithLabelValues(table)
	return func(w http.ResponseWriter, r *http.Request, p *params) {
		symbols := upper(p.list(symbolsParam))
		resume := p.text(named(streamParams, "Last-Event-ID"))
		if resume == "" {
			resume = p.text(named(streamParams, "last_event_id"))
		}
		if p.err != nil {
			s.answer(w, r, p.err, nil)
			return
		}
		if s.tail == nil {
			writeError(w, r, http.StatusServiceUnavailable, codeUnavailable, "this API holds no stream (it runs with --api-tail-age 0)", nil)
			return
		}
		sub, err := s.tail.Subscribe(k, symbols, resume)
		if err != nil {
			writeError(w, r, http.StatusBadRequest, codeInvalidParameters, err.Error(), map[string]any{"parameter": "Last-Event-ID"})
			return
		}
		defer sub.Close()
		// Each flush moves the write deadline on (the guard's recorder): a
		// stream lives while it flushes, a client that stops reading does not.
		rc := http.NewResponseController(w)
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, "retry: 2000\n: %s of %v\n\n", table, symbols)
		rc.Flush()
		s.sm.clients.WithLabelValues(table).Inc()
		defer s.sm.clients.WithLabelValues(table).Dec()
		var buf []byte
		obj := objects{keys: cols.keys}
		for {
			ctx, cancel := context.WithTimeout(r.Context(), heartbeat)
			evs, err := s.nextEvents(ctx, sub)
			cancel()
			switch {
			case s.closing():
				fmt.Fprint(w, "event: end\ndata: {\"message\":\"the server is stopping; reconnect with Last-Event-ID\"}\n\n")
				rc.Flush()
				return
			case r.Context().Err() != nil:
				return
			case errors.Is(err, tail.ErrGap):
				fmt.Fprintf(w, "event: gap\ndata: {\"message\":%q}\n\n", err.Error())
			case err != nil: // the heartbeat's timeout
				if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
					return
				}
			}
			if len(evs) > 0 {
				rows := make([]record.Row, len(evs))
				for i, e := range evs {
					rows[i] = e.Row
				}
				rec := cols.of(k.Arrow(rows))
				buf = buf[:0]
				for i, e := range evs {
					buf = append(buf, "id: "...)
					buf = append(buf, e.ID...)
					buf = append(buf, "\nevent: "...)
					buf = append(buf, name...)
					buf = append(buf, "\ndata: "...)
					buf = obj.appendObject(buf, rec, i)
					buf = append(buf, "\n\n"...)
				}
				rec.Release()
				s.sm.events.WithLabelValues(table).Add(float64(len(evs)))
				if _, err := w.Write(buf); err != nil {
					return
				}
			}
			if rc.Flush() != nil {
				return
			}
		}
	}
}

// nextEvents waits for a subscription's next records, or for the server
// to stop.
func (s *Server) nextEvents(ctx context.Context, sub *tail.Sub) ([]tail.Event, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return sub.Next(ctx)
}

// Shutdown ends the event streams (each with an event "end"), so the HTTP
// server's shutdown can drain the other requests.
func (s *Server) Shutdown() {
	s.closeOnce.Do(func() { close(s.done) })
}

func (s *Server) closing() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// streamMetrics count the event streams' clients and events.
type streamMetrics struct {
	clients *prometheus.GaugeVec
	events  *prometheus.CounterVec
}

func newStreamMetrics(reg prometheus.Registerer) *streamMetrics {
	f := ops.NewMetrics(reg)
	return &streamMetrics{
		clients: f.GaugeVec("k2_api_stream_clients", "Clients following an event stream, by table.", "table"),
		events:  f.CounterVec("k2_api_stream_events_total", "Events sent to stream clients, by table.", "table"),
	}
}
