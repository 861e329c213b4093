package marketdata

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestTimestampFormatKeepsMicroseconds(t *testing.T) {
	t.Parallel()
	ts := Timestamp(1394406000123000) // 2014-03-09T23:00:00.123Z
	if got := ts.String(); got != "2014-03-09T23:00:00.123000Z" {
		t.Fatalf("String() = %s", got)
	}
	b, _ := ts.MarshalJSON()
	var back Timestamp
	if err := back.UnmarshalJSON(b); err != nil || back != ts {
		t.Fatalf("round trip %s -> %d, %v", b, back, err)
	}
}

func TestSydneyLocalTimeToUTC(t *testing.T) {
	t.Parallel()
	asx, err := LookupExchange("asx")
	if err != nil {
		t.Fatal(err)
	}
	// 10 March 2014 is daylight time in Sydney (AEDT, UTC+11).
	local := time.Date(2014, 3, 10, 10, 0, 0, 500_000_000, asx.Location())
	if got := TimestampOf(local).String(); got != "2014-03-09T23:00:00.500000Z" {
		t.Fatalf("10:00:00.5 Sydney = %s", got)
	}
	// In June it is standard time (AEST, UTC+10).
	june := time.Date(2014, 6, 10, 10, 0, 0, 0, asx.Location())
	if got := TimestampOf(june).String(); got != "2014-06-10T00:00:00.000000Z" {
		t.Fatalf("June 10:00 Sydney = %s", got)
	}
	if d := asx.LocalDate(TimestampOf(local)); d != "2014-03-10" {
		t.Fatalf("local date = %s", d)
	}
}

func TestParseInstant(t *testing.T) {
	t.Parallel()
	asx, _ := LookupExchange("ASX")
	cases := map[string]string{
		"2014-03-10":                       "2014-03-09T13:00:00.000000Z",
		"2014-03-10T10:00:00":              "2014-03-09T23:00:00.000000Z",
		"2014-03-10T10:00:00Z":             "2014-03-10T10:00:00.000000Z",
		"2014-03-10T10:00:00.000001+11:00": "2014-03-09T23:00:00.000001Z",
	}
	for in, want := range cases {
		ts, err := ParseInstant(in, asx.Location())
		if err != nil || ts.String() != want {
			t.Errorf("ParseInstant(%q) = %s, %v; want %s", in, ts, err, want)
		}
	}
	if _, err := ParseInstant("10/03/2014", time.UTC); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
		t.Fatalf("malformed time accepted or unclear: %v", err)
	}
}

func TestEpochUnitDetection(t *testing.T) {
	t.Parallel()
	ms, err := EpochToTimestamp(1723161240123)
	if err != nil || ms != 1723161240123000 {
		t.Fatalf("ms: %d %v", ms, err)
	}
	us, err := EpochToTimestamp(1735689600123456)
	if err != nil || us != 1735689600123456 {
		t.Fatalf("µs: %d %v", us, err)
	}
	if _, err := EpochToTimestamp(1723161240); err == nil {
		t.Fatal("seconds accepted as a trade time")
	}
}

func TestAssetsSplit(t *testing.T) {
	t.Parallel()
	cases := map[string][2]string{
		"BTCUSDT":  {"BTC", "USDT"},
		"ethbtc":   {"ETH", "BTC"},
		"BTC/USD":  {"BTC", "USD"},
		"XBT/USD":  {"BTC", "USD"},
		"BTC/USDT": {"BTC", "USDT"},
		"SOLFDUSD": {"SOL", "FDUSD"},
	}
	for in, want := range cases {
		b, q, err := DefaultAssets.Split(in)
		if err != nil || b != want[0] || q != want[1] {
			t.Errorf("Split(%q) = %s %s %v; want %v", in, b, q, err, want)
		}
	}
	if _, _, err := DefaultAssets.Split("FOOBAR"); err == nil {
		t.Error("unknown quote accepted")
	}
	sym, q, _ := DefaultAssets.Symbol("XBT/USD")
	if sym != "BTCUSD" || q != "USD" {
		t.Errorf("Symbol(XBT/USD) = %s %s", sym, q)
	}
}

func validTrade() Trade {
	return Trade{
		MessageID: MessageID("trade", "BTCUSDT", "BINANCE-1"), TradeID: "BINANCE-1", Symbol: "BTCUSDT",
		Exchange: "BINANCE", AssetClass: Crypto, Timestamp: 1723161240123000,
		Price: MustDecimal("60000.5"), Quantity: MustDecimal("0.001"), Currency: "USDT",
		Side: Sell, IngestionTimestamp: 1723161240200000,
	}
}

func TestTradeValidation(t *testing.T) {
	t.Parallel()
	tr := validTrade()
	if err := tr.Validate(); err != nil {
		t.Fatal(err)
	}
	mutations := map[string]func(*Trade){
		"invalid_price":     func(t *Trade) { t.Price = 0 },
		"invalid_quantity":  func(t *Trade) { t.Quantity = -1 },
		"invalid_symbol":    func(t *Trade) { t.Symbol = "btcusdt" },
		"invalid_exchange":  func(t *Trade) { t.Exchange = "NOPE" },
		"invalid_trade_id":  func(t *Trade) { t.TradeID = "42" },
		"invalid_side":      func(t *Trade) { t.Side = "B" },
		"invalid_timestamp": func(t *Trade) { t.Timestamp = 1723161240123 }, // ms mistaken for µs
	}
	for reason, mutate := range mutations {
		bad := validTrade()
		mutate(&bad)
		err := bad.Validate()
		if err == nil || ReasonOf(err) != reason {
			t.Errorf("%s: got %v", reason, err)
		}
	}
	var ve *ValidationError
	if err := (&Trade{}).Validate(); !errors.As(err, &ve) {
		t.Fatalf("empty trade: %v", err)
	}
}

func TestQuoteEmptySideIsNull(t *testing.T) {
	t.Parallel()
	q := Quote{
		MessageID: MessageID("quote", "BHP", "ASX-BHP-1"), QuoteID: "ASX-BHP-1", Symbol: "BHP", Exchange: "ASX", AssetClass: Equities,
		Timestamp: 1394406000000000, Currency: "AUD",
		BidPrice: SomeDecimal(MustDecimal("37.7")), BidQuantity: SomeDecimal(MustDecimal("300")),
	}
	if err := q.Validate(); err != nil {
		t.Fatalf("one-sided quote rejected: %v", err)
	}
	q.AskPrice = SomeDecimal(0)
	q.AskQuantity = SomeDecimal(0)
	if err := q.Validate(); err == nil {
		t.Fatal("zero ask price accepted: empty sides must be null")
	}
	q.BidPrice, q.BidQuantity, q.AskPrice, q.AskQuantity = NullDecimal{}, NullDecimal{}, NullDecimal{}, NullDecimal{}
	if err := q.Validate(); err == nil {
		t.Fatal("quote without sides accepted")
	}
}

func TestMessageIDIsStable(t *testing.T) {
	t.Parallel()
	// UUIDv5 as any implementation computes it (these by Python's uuid.uuid5).
	for name, want := range map[[3]string]string{
		{"trade", "BTCUSDT", "BINANCE-1"}:                         "cefec92b-6a44-5a0c-bb7e-8fc53d981231",
		{"quote", "ÉTHUSDT", "KRAKEN-" + strings.Repeat("9", 80)}: "a670244f-795c-5d4a-b95e-8942ca8ac68c",
	} {
		if got := MessageID(name[0], name[1], name[2]).String(); got != want {
			t.Errorf("MessageID%q = %s, want %s", name, got, want)
		}
	}
	for _, sym := range []string{"", "BHP", "ETH%20USDT", strings.Repeat("X", 200)} {
		if got, want := MessageID("trade", sym, "ASX-7"), uuid.NewSHA1(idNamespace, []byte("trade/"+sym+"/ASX-7")); got != want {
			t.Errorf("MessageID of symbol %q = %s, uuid.NewSHA1 says %s", sym, got, want)
		}
	}
	a, b := MessageID("trade", "BTCUSDT", "BINANCE-1"), MessageID("trade", "BTCUSDT", "BINANCE-1")
	if a != b || a == MessageID("quote", "BTCUSDT", "BINANCE-1") || a == MessageID("trade", "ETHUSDT", "BINANCE-1") {
		t.Fatalf("ids not stable per kind: %s %s", a, b)
	}
}

// The direct formatter writes what time.Format writes, every day from 1970
// to 9999 and at the edges of the range it handles.
func TestTimestampTextIsTimeFormats(t *testing.T) {
	check := func(ts Timestamp) {
		t.Helper()
		if got, want := string(ts.AppendText(nil)), ts.Time().Format(TimestampLayout); got != want {
			t.Fatalf("%d: %s, time.Format says %s", int64(ts), got, want)
		}
	}
	const day = 86_400_000_000
	for d := int64(0); d < 2_932_897; d += 1 { // 1970-01-01 … 9999-12-31
		check(Timestamp(d*day + (d*7919)%day))
	}
	for _, ts := range []Timestamp{0, 1, day - 1, -1, -day, 253402300800_000000 - 1, 253402300800_000000, 1 << 62, -1 << 62} {
		check(ts)
	}
}

func FuzzTimestampText(f *testing.F) {
	f.Add(int64(1723161255342123))
	f.Fuzz(func(t *testing.T, us int64) {
		ts := Timestamp(us)
		if got, want := string(ts.AppendText(nil)), ts.Time().Format(TimestampLayout); got != want {
			t.Fatalf("%d: %s, time.Format says %s", us, got, want)
		}
	})
}
