package asx

import (
	"slices"
	"testing"

	"github.com/k2-market-data/k2/internal/marketdata"
)

// A line that fails for any reason after its date is still counted in its
// day, so that the corrected file, loaded again, gives every row the id it
// had: a short line must not shift the ids of the rows after it.
func TestRejectedLinesKeepTheDaysNumbering(t *testing.T) {
	t.Parallel()
	company := marketdata.ReferenceData{Symbol: "DVN", CompanyID: "7181"}
	good := []string{
		"03/10/2014,11:29:15.863,0.675,120,0",
		"03/10/2014,11:30:01.000,0.675,14000,0",
		"03/10/2014,11:31:00.000,0.680,696,0",
	}
	damaged := []string{good[0], "03/10/2014,11:30:01.000,0.675", good[2]}
	clean, bad := parseIDs(company, good), parseIDs(company, damaged)
	if bad[1] != "rejected" || bad[0] != clean[0] || bad[2] != clean[2] || clean[2] != "ASX-DVN-20140310-3" {
		t.Fatalf("ids with a short line %v, without %v: the rows after it must keep theirs", bad, clean)
	}
	qp := NewQuoteParser(company, marketdata.Now())
	qp.Parse("03/10/2014,10:00:00.000,1,2,3")
	q, err := qp.Parse("03/10/2014,10:00:01.000,0.67,0.68,100,200")
	if err != nil || q.QuoteID != "ASX-DVN-20140310-2" {
		t.Fatalf("quote after a short line: %s %v", q.QuoteID, err)
	}
}

// A row whose date does not parse keeps its place in its date's
// numbering, in the middle of a day and at either end of one, so the rows
// after it keep their ids and the corrected row, loaded later, takes its
// own.
func TestBadDatesKeepTheDaysNumbering(t *testing.T) {
	t.Parallel()
	company := marketdata.ReferenceData{Symbol: "BHP", CompanyID: "1"}
	clean := []string{
		"03/10/2014,10:00:01.000,36.50,100,0",
		"03/10/2014,12:00:00.000,36.55,200,0",
		"03/10/2014,16:10:00.000,36.60,300,0",
		"03/11/2014,10:00:02.000,36.70,400,0",
		"03/11/2014,10:00:03.000,36.75,500,0",
		"03/11/2014,16:00:00.000,36.80,600,0",
	}
	want := parseIDs(company, clean)
	for i := range clean {
		damaged := slices.Clone(clean)
		damaged[i] = "13/45/2014" + clean[i][len("03/10/2014"):]
		got := parseIDs(company, damaged)
		for j := range got {
			if j == i {
				if got[j] != "rejected" {
					t.Errorf("row %d with a bad date got id %s", j, got[j])
				}
				continue
			}
			if got[j] != want[j] {
				t.Errorf("row %d bad: row %d has id %s, want %s (all: %v)", i, j, got[j], want[j], got)
			}
		}
	}
}

func parseIDs(company marketdata.ReferenceData, lines []string) []string {
	p := NewTradeParser(company, marketdata.Now())
	var out []string
	for _, l := range lines {
		tr, err := p.Parse(l)
		if err != nil {
			out = append(out, "rejected")
			continue
		}
		out = append(out, tr.TradeID)
	}
	return out
}
