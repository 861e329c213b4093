package sink

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/k2-market-data/k2/internal/lake/laketest"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/testsvc"
)

// Confluent's own Python client, configured as its documentation shows
// (default subject naming, the topic's latest schema), reads what K2
// writes and writes what K2's sink stores.
func TestConfluentPythonClientReadsAndWritesK2Topics(t *testing.T) {
	testsvc.Python(t)
	e := newEnv(t)
	e.produceTrades(t, 0, 30)

	out := testsvc.RunPythonScript(t, "confluent_avro_check.py", "--bootstrap", e.brokers[0], "--registry", e.reg.URL(),
		"--topic", binanceTrades, "--read", "30", "--produce", "25", "--symbol", "ADAUSDT")

	subject := out["subject"].(map[string]any)
	if subject["subject"] != binanceTrades+"-value" || subject["version"] != jsonNumber(1) {
		t.Errorf("subject %v, want %s-value version 1", subject, binanceTrades)
	}
	read := out["read"].([]any)
	if len(read) != 30 {
		t.Fatalf("the Python consumer read %d records, want 30", len(read))
	}
	for _, r := range read {
		r := r.(map[string]any)
		var i int
		if _, err := fmt.Sscanf(r["trade_id"].(string), "BINANCE-%d", &i); err != nil {
			t.Fatalf("read %v", r)
		}
		want := trade(i)
		const f = "%v %v %v %v %v %v"
		got := fmt.Sprintf(f, r["message_id"], r["symbol"], md.MustDecimal(r["price"].(string)), md.MustDecimal(r["quantity"].(string)), r["timestamp"], r["side"])
		if w := fmt.Sprintf(f, want.MessageID, want.Symbol, want.Price, want.Quantity, int64(want.Timestamp), want.Side); got != w {
			t.Errorf("the Python consumer read %s, K2 wrote %s", got, w)
		}
	}

	produced := map[string]map[string]any{}
	for _, p := range out["produced"].([]any) {
		p := p.(map[string]any)
		produced[p["trade_id"].(string)] = p
	}
	s := e.startSink(t, Config{})
	waitFor(t, "the sink to store K2's and Python's trades", func() bool { return s.Stats().Written == 55 })
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.DeadLetters != 0 || st.Duplicates != 0 {
		t.Fatalf("sink stats %+v", st)
	}
	stored := 0
	laketest.Scan(t, e.lake, "trades", []string{"trade_id", "symbol", "price"}, func(rec arrow.RecordBatch) {
		ids := laketest.Column(t, rec, "trade_id").(*array.String)
		syms := laketest.Column(t, rec, "symbol").(*array.String)
		prices := laketest.Column(t, rec, "price").(*array.Decimal128)
		scale := prices.DataType().(*arrow.Decimal128Type).Scale
		for i := range int(rec.NumRows()) {
			p, ok := produced[ids.Value(i)]
			if !ok {
				continue
			}
			stored++
			price := md.MustDecimal(prices.Value(i).ToString(scale))
			if syms.Value(i) != "ADAUSDT" || price != md.MustDecimal(p["price"].(string)) {
				t.Errorf("stored %s %s %s, Python wrote %v", ids.Value(i), syms.Value(i), price, p)
			}
		}
	})
	if stored != 25 {
		t.Errorf("the lake holds %d of the 25 trades Python wrote", stored)
	}
}

// jsonNumber is how RunPythonScript decodes a JSON integer.
func jsonNumber(n int64) json.Number { return json.Number(strconv.FormatInt(n, 10)) }
