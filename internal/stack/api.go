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
	// Behind the listener's guard, which owns the API's metrics; with no
	// listener (--http-listen off) nothing is served, and the server keeps
	// a guard of its own.
	api.New(e, api.Options{Logger: st.log, Registerer: st.metrics, Guard: st.http.guard}).Register(st.http.mux)
	return nil
}
