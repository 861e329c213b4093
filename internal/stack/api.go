package stack

import (
	"github.com/k2-market-data/k2/internal/api"
)

// serveAPI answers the REST API on the process's listener, from a query
// engine over the lake.
func (st *Stack) serveAPI() error {
	e, err := OpenQuery(st.lake, st.cfg, st.metrics, st.log)
	if err != nil {
		return err
	}
	st.onClose(func() { e.Close() })
	a := st.cfg.API
	api.New(e, api.Options{Logger: st.log, Registerer: st.metrics,
		SQL: a.SQL, SQLRows: a.SQLRows, SQLTimeout: a.SQLTimeout, SQLMemory: a.SQLMemory}).Register(st.http.mux)
	return nil
}
