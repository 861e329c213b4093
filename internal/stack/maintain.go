package stack

import (
	"github.com/k2-market-data/k2/internal/maintain"
	"github.com/k2-market-data/k2/internal/record"
)

func (st *Stack) newMaintainer() {
	st.maintainer = maintain.New(st.lake, maintain.Options{
		Maintain: st.cfg.Maintain, Tables: record.TableNames(),
		Logger: st.log, Registerer: st.metrics,
	})
}
