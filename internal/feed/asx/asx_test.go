package asx

import (
	"bufio"
	"errors"
	"github.com/google/uuid"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/testutil"
)

var (
	ingested = marketdata.TimestampOf(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
	bhp      = marketdata.ReferenceData{CompanyID: "7078", Symbol: "BHP"}
)

// forLines calls fn with every line of a shared data file, CR included.
func forLines(t *testing.T, path string, fn func(n int, line string)) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		fn(n, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

func companies(t *testing.T) map[string]marketdata.ReferenceData {
	t.Helper()
	f, err := os.Open(testutil.Data(t, "asx", "reference-data", "company_info.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	refs, err := ReadCompanies(f, ingested)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]marketdata.ReferenceData{}
	for _, r := range refs {
		m[r.CompanyID] = r
	}
	return m
}

func TestReadCompaniesRealFile(t *testing.T) {
	t.Parallel()
	m := companies(t)
	if len(m) != 4 {
		t.Fatalf("%d companies, want 4", len(m))
	}
	b := m["7078"]
	if b.Symbol != "BHP" || b.CompanyName != "BHP BILLITON LTD" || b.ISIN != "AU000000BHP4" ||
		b.Exchange != "ASX" || b.AssetClass != marketdata.Equities || b.Currency != "AUD" || !b.IsActive ||
		b.IngestionTimestamp != ingested || b.ListingDate.Valid || b.DelistingDate.Valid {
		t.Fatalf("BHP = %+v", b)
	}
	if b.VendorData["coverage_start"] != "2008-05-07" || b.VendorData["coverage_end"] != "2014-03-31" {
		t.Fatalf("BHP vendor_data = %v", b.VendorData)
	}
	// Versions are identified by content: the same record reads to the same
	// id, a different company to another.
	if again := companies(t)["7078"]; b.MessageID == uuid.Nil || again.MessageID != b.MessageID || m["7458"].MessageID == b.MessageID {
		t.Fatalf("message id %s", b.MessageID)
	}
	if m["3153"].Symbol != "MWR" || m["7181"].Symbol != "DVN" || m["7458"].Symbol != "RIO" {
		t.Fatalf("symbols: %v", m)
	}
}

func TestReadCompaniesErrors(t *testing.T) {
	t.Parallel()
	const header = "company_id,symbol,company_name,ISIN,start_date,end_date\r\n"
	cases := map[string]struct{ in, want string }{
		"bad header":   {"id,symbol,name,isin,start,end\r\n", "line 1: header"},
		"empty":        {"", "line 1"},
		"few fields":   {header + "7078,BHP,BHP BILLITON LTD\r\n", "line 2"},
		"bad date":     {header + "7078,BHP,BHP,AU000000BHP4,2008-05-07,03/31/2014\r\n", `line 2: vendor_data: coverage_start "2008-05-07" is not MM/DD/YYYY`},
		"no symbol":    {header + "1,BHP,BHP,X,05/07/2008,03/31/2014\r\n7078,,BHP,X,05/07/2008,03/31/2014\r\n", "line 3: symbol"},
		"missing name": {header + "7078,BHP,,X,05/07/2008,03/31/2014\r\n", "line 2: company_name: missing"},
	}
	for name, c := range cases {
		_, err := ReadCompanies(strings.NewReader(c.in), ingested)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", name, err, c.want)
		}
	}
}

func TestTradesRealFile(t *testing.T) {
	t.Parallel()
	company := companies(t)["7078"]
	p := NewTradeParser(company, ingested)
	perDate := map[string]int{}
	ids := map[string]bool{}
	var first marketdata.Trade
	n := forLines(t, testutil.Data(t, "asx", "trades", "7078.csv"), func(n int, line string) {
		tr, err := p.Parse(line)
		if err != nil {
			t.Fatalf("line %d %q: %v", n, line, err)
		}
		if n == 1 {
			first = tr
		}
		if ids[tr.TradeID] {
			t.Fatalf("line %d: duplicate trade id %s", n, tr.TradeID)
		}
		ids[tr.TradeID] = true
		perDate[tr.TradeID[len("ASX-BHP-"):len("ASX-BHP-20140310")]]++
		day := tr.Timestamp.Time().In(sydney).Format("20060102")
		if want := "ASX-BHP-" + day + "-"; !strings.HasPrefix(tr.TradeID, want) || tr.SourceSequence.Int64 != int64(perDate[day]) {
			t.Fatalf("line %d: id %s seq %d, want %s%d", n, tr.TradeID, tr.SourceSequence.Int64, want, perDate[day])
		}
	})
	if n != 91631 || len(ids) != 91631 {
		t.Fatalf("%d lines, %d unique ids; want 91631", n, len(ids))
	}
	want := map[string]int{"20140310": 17000, "20140311": 21681, "20140312": 20283, "20140313": 16309, "20140314": 16358}
	for d, c := range want {
		if perDate[d] != c {
			t.Errorf("%s: %d trades, want %d", d, perDate[d], c)
		}
	}
	// 03/10/2014,07:57:14.754,36.667,20000,3,X,
	if first.Timestamp.String() != "2014-03-09T20:57:14.754000Z" || first.Price.String() != "36.667" ||
		first.Quantity.String() != "20000" || first.TradeID != "ASX-BHP-20140310-1" ||
		len(first.TradeConditions) != 1 || first.TradeConditions[0] != "3" ||
		first.VendorData["venue"] != "X" || first.VendorData["company_id"] != "7078" || len(first.VendorData) != 2 ||
		first.Side != marketdata.Unknown || first.Currency != "AUD" || first.Exchange != "ASX" ||
		first.AssetClass != marketdata.Equities || first.IngestionTimestamp != ingested ||
		first.MessageID != marketdata.MessageID("trade", "BHP", "ASX-BHP-20140310-1") {
		t.Fatalf("first trade = %+v", first)
	}
}

func TestSmallCompaniesRealFiles(t *testing.T) {
	t.Parallel()
	m := companies(t)
	for _, c := range []struct {
		id             string
		trades, quotes int
	}{{"7181", 232, 549}, {"3153", 11, 60}} {
		tp, qp := NewTradeParser(m[c.id], ingested), NewQuoteParser(m[c.id], ingested)
		n := forLines(t, testutil.Data(t, "asx", "trades", c.id+".csv"), func(n int, line string) {
			if _, err := tp.Parse(line); err != nil {
				t.Errorf("%s trade line %d: %v", c.id, n, err)
			}
		})
		k := forLines(t, testutil.Data(t, "asx", "quotes", c.id+".csv"), func(n int, line string) {
			if _, err := qp.Parse(line); err != nil {
				t.Errorf("%s quote line %d: %v", c.id, n, err)
			}
		})
		if n != c.trades || k != c.quotes {
			t.Errorf("%s: %d trades, %d quotes", c.id, n, k)
		}
	}
}

func TestQuotesRealFile(t *testing.T) {
	t.Parallel()
	p := NewQuoteParser(companies(t)["7078"], ingested)
	var first marketdata.Quote
	ids := map[string]bool{}
	session, ordered := 0, 0
	n := forLines(t, testutil.Data(t, "asx", "quotes", "7078.csv"), func(n int, line string) {
		q, err := p.Parse(line)
		if err != nil {
			t.Fatalf("line %d %q: %v", n, line, err)
		}
		if n == 1 {
			first = q
		}
		if ids[q.QuoteID] {
			t.Fatalf("line %d: duplicate quote id %s", n, q.QuoteID)
		}
		ids[q.QuoteID] = true
		local := q.Timestamp.Time().In(sydney).Format("15:04:05")
		if q.BidPrice.Valid && q.AskPrice.Valid && local >= "10:30:00" && local < "15:30:00" {
			session++
			if q.BidPrice.Decimal <= q.AskPrice.Decimal {
				ordered++
			}
		}
	})
	if n != 77849 {
		t.Fatalf("%d quotes, want 77849", n)
	}
	// 03/10/2014,05:43:45.676,37.7,0.0,300,0
	if first.BidPrice.String() != "37.7" || first.BidQuantity.String() != "300" || first.AskPrice.Valid || first.AskQuantity.Valid ||
		first.QuoteID != "ASX-BHP-20140310-1" || first.SourceSequence != marketdata.SomeInt64(1) ||
		first.Timestamp.String() != "2014-03-09T18:43:45.676000Z" || first.VendorData["company_id"] != "7078" ||
		first.MessageID != marketdata.MessageID("quote", "BHP", first.QuoteID) || first.Currency != "AUD" {
		t.Fatalf("first quote = %+v", first)
	}
	// With the columns read as the original documented them (bid, bid size,
	// ask, ask size), "ask" would be a share count and this would fail.
	if session < 10000 || float64(ordered) < 0.95*float64(session) {
		t.Fatalf("bid <= ask on %d of %d two-sided session quotes", ordered, session)
	}
	t.Logf("bid <= ask on %d of %d two-sided quotes between 10:30 and 15:30 (%.2f%%)", ordered, session, 100*float64(ordered)/float64(session))
}

func TestTradeParse(t *testing.T) {
	t.Parallel()
	p := NewTradeParser(bhp, ingested)
	tr, err := p.Parse("03/10/2014,10:00:00.5,36.5,100,,,\r")
	if err != nil {
		t.Fatal(err)
	}
	if tr.TradeConditions == nil || len(tr.TradeConditions) != 0 || len(tr.VendorData) != 1 ||
		tr.Timestamp.String() != "2014-03-09T23:00:00.500000Z" {
		t.Fatalf("blank qualifier: %+v", tr)
	}
	// Five fields, code 0 kept as text, buyer id kept.
	if tr, err = p.Parse("03/10/2014,10:00:01.000,36.5,100,0"); err != nil || len(tr.TradeConditions) != 1 || tr.TradeConditions[0] != "0" {
		t.Fatalf("qualifier 0: %+v %v", tr, err)
	}
	if tr, err = p.Parse("03/10/2014,10:00:01.000,36.5,100,0,,35.77"); err != nil || tr.VendorData["buyer_id"] != "35.77" || tr.TradeID != "ASX-BHP-20140310-3" {
		t.Fatalf("buyer id: %+v %v", tr, err)
	}
	// A new date restarts the numbering; the old one continues.
	if tr, _ = p.Parse("03/11/2014,10:00:00.000,36.5,100,0"); tr.TradeID != "ASX-BHP-20140311-1" || tr.SourceSequence.Int64 != 1 {
		t.Fatalf("next date: %s", tr.TradeID)
	}
	if tr, _ = p.Parse("03/10/2014,16:00:00.000,36.5,100,0"); tr.TradeID != "ASX-BHP-20140310-4" {
		t.Fatalf("back to first date: %s", tr.TradeID)
	}
	// 02:30 came twice on 6 April 2014 (03:00 AEDT became 02:00 AEST): the
	// first, whatever Go version reads the file.
	if tr, err = p.Parse("04/06/2014,02:30:00.000,36.5,100,0"); err != nil || tr.Timestamp.String() != "2014-04-05T15:30:00.000000Z" {
		t.Fatalf("a repeated local time: %s %v", tr.Timestamp, err)
	}
}

func TestTradeParseErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ line, reason, text string }{
		{"03/10/2014,10:00:00.000,36.5", "parse", "5 to 7 fields expected, got 3"},
		{"03/10/2014,10:00:00.000,36.5,100,0,X,1,extra", "parse", "5 to 7 fields expected, got 8"},
		{"", "parse", "5 to 7 fields expected, got 1"},
		{"2014-03-10,10:00:00.000,36.5,100,0", "invalid_timestamp", `date "2014-03-10" is not MM/DD/YYYY`},
		{"02/30/2014,10:00:00.000,36.5,100,0", "invalid_timestamp", `date "02/30/2014"`},
		{"03/10/2014,25:00:00.000,36.5,100,0", "invalid_timestamp", `time "25:00:00.000" is not HH:MM:SS.mmm`},
		{"03/10/2014,10:00,36.5,100,0", "invalid_timestamp", `time "10:00"`},
		// Sydney's clocks went from 02:00 to 03:00 on 5 October 2014.
		{"10/05/2014,02:30:00.000,36.5,100,0", "invalid_timestamp", "2014-10-05 02:30:00 does not exist in Australia/Sydney: the clocks go from 02:00 to 03:00"},
		{"03/10/2014,10:00:00.000,abc,100,0", "invalid_price", `price: invalid decimal "abc"`},
		{"03/10/2014,10:00:00.000,-1,100,0", "invalid_price", "negative"},
		{"03/10/2014,10:00:00.000,0,100,0", "invalid_price", "must be positive"},
		{"03/10/2014,10:00:00.000,36.5,,0", "invalid_quantity", `quantity: invalid decimal ""`},
		{"03/10/2014,10:00:00.000,36.5,0,0", "invalid_quantity", "must be positive"},
		{"03/10/2014,10:00:00.000,36.5,100,X", "invalid_trade_conditions", `qualifier "X" is not an integer code`},
	}
	for _, c := range cases {
		_, err := NewTradeParser(bhp, ingested).Parse(c.line)
		if err == nil || marketdata.ReasonOf(err) != c.reason || !strings.Contains(err.Error(), c.text) {
			t.Errorf("Parse(%q) = %v (reason %s); want %s containing %q", c.line, err, marketdata.ReasonOf(err), c.reason, c.text)
		}
	}
	// A bad price row still takes its number, so ids after it do not shift
	// when the row is corrected and the file re-loaded.
	p := NewTradeParser(bhp, ingested)
	p.Parse("03/10/2014,10:00:00.000,36.5,100,0")
	p.Parse("03/10/2014,10:00:00.000,abc,100,0")
	if tr, _ := p.Parse("03/10/2014,10:00:00.000,36.5,100,0"); tr.TradeID != "ASX-BHP-20140310-3" {
		t.Fatalf("row after a bad one: %s", tr.TradeID)
	}
	var ve *marketdata.ValidationError
	if _, err := p.Parse("03/10/2014,10:00:00.000,1e30,100,0"); !errors.As(err, &ve) || ve.Field != "price" {
		t.Fatalf("huge price: %v", err)
	}
}

func TestQuoteParse(t *testing.T) {
	t.Parallel()
	p := NewQuoteParser(bhp, ingested)
	q, err := p.Parse("03/10/2014,10:00:00.000,0,37.73,0,600\r")
	if err != nil || q.BidPrice.Valid || q.BidQuantity.Valid || q.AskPrice.String() != "37.73" || q.AskQuantity.String() != "600" {
		t.Fatalf("empty bid: %+v %v", q, err)
	}
	cases := []struct{ line, reason, text string }{
		{"03/10/2014,10:00:00.000,37.7,0.0,300", "parse", "6 fields expected, got 5"},
		{"03/10/2014,10:00:00.000,0,37.73,5,600", "invalid_bid_price", "zero price with size 5"},
		{"03/10/2014,10:00:00.000,37.7,0,300,7", "invalid_ask_price", "zero price with size 7"},
		{"03/10/2014,10:00:00.000,0,0,0,0", "invalid_bid_price", "both sides are empty"},
		{"03/10/2014,10:00:00.000,37.7,x,300,0", "invalid_ask_price", `invalid decimal "x"`},
		{"03/10/2014,10:00:00.000,37.7,37.8,y,0", "invalid_bid_quantity", `invalid decimal "y"`},
		{"3/10/2014,10:00:00.000,37.7,37.8,1,1", "invalid_timestamp", `date "3/10/2014"`},
	}
	for _, c := range cases {
		_, err := p.Parse(c.line)
		if err == nil || marketdata.ReasonOf(err) != c.reason || !strings.Contains(err.Error(), c.text) {
			t.Errorf("Parse(%q) = %v (reason %s); want %s containing %q", c.line, err, marketdata.ReasonOf(err), c.reason, c.text)
		}
	}
}

func BenchmarkTradeParse(b *testing.B) {
	p := NewTradeParser(bhp, ingested)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Parse("03/10/2014,10:00:00.500,36.667,20000,3,X,\r"); err != nil {
			b.Fatal(err)
		}
	}
}
