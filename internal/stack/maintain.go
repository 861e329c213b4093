package stack

import (
	"github.com/k2-market-data/k2/internal/maintain"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/rollup"
)

// newMaintainer keeps the tables healthy and, every BarsEvery, the bar
// tables up to the trades, reading them through the API's engine where
// the process has one.
func (st *Stack) newMaintainer() error {
	st.maintainer = maintain.New(st.lake, maintain.Options{
		Maintain: st.cfg.Maintain, Tables: record.AllTableNames(),
		Logger: st.log, Registerer: st.metrics,
	})
	if st.cfg.Maintain.BarsEvery <= 0 {
		return nil
	}
	if st.engine == nil {
		e, err := OpenQuery(st.lake, st.cfg, st.metrics, st.log)
		if err != nil {
			return err
		}
		st.engine = e
		st.onClose(func() { e.Close() })
	}
	st.roller = rollup.New(st.lake, st.engine, rollup.Options{Logger: st.log, Registerer: st.metrics})
	return nil
}
