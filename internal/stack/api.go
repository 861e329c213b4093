package stack

import (
	"github.com/k2-market-data/k2/internal/api"
	"github.com/k2-market-data/k2/internal/tail"
	"github.com/k2-market-data/k2/web"
)

// serveAPI answers the REST API on the process's listener, from a query
// engine over the lake.
func (st *Stack) serveAPI() error {
	e, err := OpenQuery(st.lake, st.cfg, st.metrics, st.log)
	if err != nil {
		return err
	}
	st.engine = e
	if st.cfg.API.TailAge > 0 {
		st.tail = tail.New(tail.Options{Brokers: st.brokers, Security: st.sec, TopicPrefix: st.cfg.Kafka.TopicPrefix,
			MaxAge: st.cfg.API.TailAge, MaxBytes: st.cfg.API.TailBytes, Logger: st.log, Registerer: st.metrics}, st.lake, st.reg)
	}
	a := st.cfg.API
	// Behind the listener's guard, which owns the API's metrics; with no
	// listener (--http-listen off) nothing is served, and the server keeps
	// a guard of its own.
	srv := api.New(e, api.Options{Logger: st.log, Registerer: st.metrics, Guard: st.http.guard, Tail: st.tail, LatestBytes: a.LatestBytes,
		SQL: a.SQL, SQLRows: a.SQLRows, SQLTimeout: a.SQLTimeout, SQLMemory: a.SQLMemory,
		Gatherer: st.metrics, PipelineMetrics: a.PipelineMetrics, PipelineStep: a.PipelineStep, PipelineHistory: a.PipelineHistory})
	srv.Register(st.http.mux)
	// The dashboard's page and assets, beside the API it reads.
	web.New().Register(st.http.mux)
	st.api = srv
	// On stop: event streams end, requests in flight drain, then the
	// engine closes.
	st.onClose(func() {
		srv.Shutdown()
		st.http.shutdown()
		e.Close()
	})
	return nil
}
