package api_test

import (
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/api"
)

type sqlAnswer struct {
	Success bool `json:"success"`
	Data    struct {
		Columns []struct{ Name, Type string }
		Rows    [][]any
	} `json:"data"`
	Error struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Details map[string]any `json:"details"`
	} `json:"error"`
	Meta struct {
		RequestID string           `json:"request_id"`
		Count     *int             `json:"count"`
		Truncated *bool            `json:"truncated"`
		Limit     int              `json:"limit"`
		Snapshots map[string]int64 `json:"snapshots"`
	} `json:"meta"`
}

func postSQL(t *testing.T, srv *httptest.Server, body string) (int, sqlAnswer) {
	t.Helper()
	resp, err := http.Post(srv.URL+"/v1/sql", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a sqlAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("%s: not JSON: %v", body, err)
	}
	return resp.StatusCode, a
}

// POST /v1/sql, turned on, answers from views of the tables in the one
// shape, refuses what is not one query, and stops at its limits.
func TestSQLRoute(t *testing.T) {
	srv, _ := bhp(t, api.Options{SQL: true, SQLRows: 500, SQLTimeout: 2 * time.Second})
	// Count and volume as the raw file has them.
	var count int64
	volume := new(big.Rat)
	for _, d := range bhpDays(t) {
		n, _ := new(big.Int).SetString(d[3], 10)
		v, _ := new(big.Rat).SetString(d[2])
		count += n.Int64()
		volume.Add(volume, v)
	}
	status, a := postSQL(t, srv, `{"sql": "SELECT count(*) AS trades, sum(quantity) AS volume FROM trades WHERE symbol = 'BHP' AND exchange = 'ASX'"}`)
	if status != 200 || !a.Success || len(a.Data.Rows) != 1 || *a.Meta.Count != 1 || *a.Meta.Truncated || a.Meta.RequestID == "" ||
		a.Meta.Snapshots["trades"] == 0 || a.Meta.Limit != 500 {
		t.Fatalf("%d %+v", status, a)
	}
	if c := a.Data.Columns; len(c) != 2 || c[0].Name != "trades" || c[0].Type != "BIGINT" || c[1].Name != "volume" || !strings.HasPrefix(c[1].Type, "DECIMAL") {
		t.Errorf("columns %+v", c)
	}
	row := a.Data.Rows[0]
	if jsonInt(row[0]) != big.NewInt(count).String() || !sameDecimal(row[1], volume.FloatString(8)) {
		t.Errorf("BHP: %v; from the file %d trades, volume %s", row, count, volume.FloatString(0))
	}
	// The limit cuts and says so; a request may ask fewer rows, not more.
	status, a = postSQL(t, srv, `{"sql": "SELECT trade_id, price, \"timestamp\" FROM trades ORDER BY \"timestamp\"", "limit": 2}`)
	if status != 200 || len(a.Data.Rows) != 2 || *a.Meta.Count != 2 || !*a.Meta.Truncated || a.Meta.Limit != 2 {
		t.Fatalf("limit 2: %d %+v", status, a)
	}
	if _, ok := a.Data.Rows[0][1].(string); !ok || !strings.HasSuffix(a.Data.Rows[0][2].(string), "Z") {
		t.Errorf("a price is exact text, a time RFC 3339 UTC: %v", a.Data.Rows[0])
	}
	if status, a = postSQL(t, srv, `{"sql": "SELECT * FROM trades"}`); status != 200 || len(a.Data.Rows) != 500 || !*a.Meta.Truncated {
		t.Fatalf("the route's limit: %d, %d rows", status, len(a.Data.Rows))
	}
	// As of a time before the first commit every view is empty.
	status, a = postSQL(t, srv, `{"sql": "SELECT count(*) FROM trades", "as_of_time": "2001-01-01T00:00:00Z"}`)
	if status != 200 || jsonInt(a.Data.Rows[0][0]) != "0" || a.Meta.Snapshots["trades"] != 0 {
		t.Fatalf("as of 2001: %d %+v", status, a)
	}

	for _, c := range []struct {
		body         string
		status       int
		code, param  string
		inTheMessage string
	}{
		{`{"sql": "SELECT 1"`, 400, "INVALID_PARAMETERS", "body", "not a JSON object"},
		{`{"sql": "SELECT 1", "format": "csv"}`, 400, "INVALID_PARAMETERS", "body", `unknown field "format"`},
		{`{"sql": "SELECT 1"} {"sql": "SELECT 2"}`, 400, "INVALID_PARAMETERS", "body", "more than one"},
		{``, 400, "INVALID_PARAMETERS", "body", "empty"},
		{`{"sql": "` + strings.Repeat("x", 1<<20) + `"}`, 413, "PAYLOAD_TOO_LARGE", "body", "larger than"},
		{`{"sql": ""}`, 400, "INVALID_PARAMETERS", "sql", "required"},
		{`{"sql": "SELECT 1", "limit": 501}`, 400, "INVALID_PARAMETERS", "limit", "from 1 to 500"},
		{`{"sql": "SELECT 1", "as_of_time": "yesterday"}`, 400, "INVALID_PARAMETERS", "as_of_time", "RFC 3339"},
		{`{"sql": "SELECT 1", "as_of_time": "2024-01-01T00:00:00Z", "as_of_snapshot": 1}`, 400, "INVALID_PARAMETERS", "as_of_snapshot", "not both"},
		{`{"sql": "SELECT 1", "as_of_snapshot": 42}`, 400, "INVALID_PARAMETERS", "", "no table has snapshot 42"},
		{`{"sql": "COPY trades TO '/tmp/x.csv'"}`, 400, "INVALID_PARAMETERS", "sql", "only a query"},
		{`{"sql": "SELECT * FROM read_csv('/etc/passwd')"}`, 400, "INVALID_PARAMETERS", "sql", "Permission Error"},
		{`{"sql": "SELECT 1; SELECT 2"}`, 400, "INVALID_PARAMETERS", "sql", "one statement"},
		{`{"sql": "SELECT count(*) FROM range(1000000) a(i), range(1000000) b(j) WHERE (i + j) % 7 = 3"}`, 504, "QUERY_TIMEOUT", "", "longer than 2s"},
	} {
		status, a := postSQL(t, srv, c.body)
		param, _ := a.Error.Details["parameter"].(string)
		if status != c.status || a.Success || a.Error.Code != c.code || param != c.param || !strings.Contains(a.Error.Message, c.inTheMessage) {
			b := c.body
			if len(b) > 100 {
				b = b[:100]
			}
			t.Errorf("%s: %d %+v; want %d %s (%s) saying %q", b, status, a.Error, c.status, c.code, c.param, c.inTheMessage)
		}
	}
	if status, env, h := get(t, srv, "GET", "/v1/sql"); status != 405 || env.Error.Code != "METHOD_NOT_ALLOWED" || h.Get("Allow") != "POST" {
		t.Errorf("GET /v1/sql: %d %+v", status, env)
	}
	// The views answer after every refusal.
	if status, a := postSQL(t, srv, `{"sql": "SELECT count(*) FROM trades"}`); status != 200 || jsonInt(a.Data.Rows[0][0]) == "0" {
		t.Fatalf("after the refusals: %d %+v", status, a)
	}
}
