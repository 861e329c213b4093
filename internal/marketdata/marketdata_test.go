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

// Wall-clock times around daylight-saving changes: a repeated time names
// its earlier instant on every Go version, a skipped one is refused with
// where the clocks resume, and a date whose midnight is skipped starts
// where they do.
func TestLocalInstantAcrossDaylightSaving(t *testing.T) {
	t.Parallel()
	zone := func(name string) *time.Location {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		return loc
	}
	sydney, newYork, lordHowe := zone("Australia/Sydney"), zone("America/New_York"), zone("Australia/Lord_Howe")
	wall := func(s string) time.Time {
		w, err := time.Parse("2006-01-02 15:04:05.999999", s)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	for _, c := range []struct {
		loc        *time.Location
		wall, want string
	}{
		{sydney, "2014-03-10 10:00:00.5", "2014-03-09T23:00:00.500000Z"},
		// Sydney, 6 April 2014: 03:00 AEDT became 02:00 AEST; 02:30 came twice.
		{sydney, "2014-04-06 02:30:00", "2014-04-05T15:30:00.000000Z"},
		{sydney, "2014-04-06 01:59:59.999999", "2014-04-05T14:59:59.999999Z"},
		{sydney, "2014-04-06 03:00:00", "2014-04-05T17:00:00.000000Z"},
		// Sydney, 5 October 2014: 02:00 AEST became 03:00 AEDT.
		{sydney, "2014-10-05 01:59:59.999999", "2014-10-04T15:59:59.999999Z"},
		{sydney, "2014-10-05 03:00:00", "2014-10-04T16:00:00.000000Z"},
		{newYork, "2024-11-03 01:30:00", "2024-11-03T05:30:00.000000Z"},
		{lordHowe, "2014-04-06 01:45:00", "2014-04-05T14:45:00.000000Z"},
	} {
		got, err := LocalInstant(wall(c.wall), c.loc)
		if err != nil || TimestampOf(got).String() != c.want {
			t.Errorf("%s in %s = %s, %v; want %s", c.wall, c.loc, TimestampOf(got), err, c.want)
		}
	}
	for _, c := range []struct {
		loc                  *time.Location
		wall, resume, clocks string
	}{
		{sydney, "2014-10-05 02:30:00", "2014-10-04T16:00:00.000000Z", "from 02:00 to 03:00"},
		{sydney, "2014-10-05 02:00:00", "2014-10-04T16:00:00.000000Z", "from 02:00 to 03:00"},
		{newYork, "2024-03-10 02:59:59", "2024-03-10T07:00:00.000000Z", "from 02:00 to 03:00"},
		// Lord Howe moves its clocks by half an hour.
		{lordHowe, "2014-10-05 02:15:00", "2014-10-04T15:30:00.000000Z", "from 02:00 to 02:30"},
	} {
		got, err := LocalInstant(wall(c.wall), c.loc)
		if err == nil || !strings.Contains(err.Error(), "does not exist in "+c.loc.String()) || !strings.Contains(err.Error(), c.clocks) ||
			TimestampOf(got).String() != c.resume {
			t.Errorf("%s in %s = %s, %v; want an error saying the clocks go %s, resuming at %s", c.wall, c.loc, TimestampOf(got), err, c.clocks, c.resume)
		}
	}

	if _, err := ParseInstant("2014-10-05T02:30:00", sydney); err == nil || !strings.Contains(err.Error(), `time "2014-10-05T02:30:00"`) ||
		!strings.Contains(err.Error(), "does not exist") {
		t.Errorf("a skipped local time as a bound: %v", err)
	}
	if ts, err := ParseInstant("2014-04-06T02:30", sydney); err != nil || ts.String() != "2014-04-05T15:30:00.000000Z" {
		t.Errorf("a repeated local time as a bound: %s, %v", ts, err)
	}
	// Santiago's clocks went from 00:00 to 01:00 on 8 September 2024.
	if ts, err := ParseInstant("2024-09-08", zone("America/Santiago")); err != nil || ts.String() != "2024-09-08T04:00:00.000000Z" {
		t.Errorf("a date whose midnight is skipped: %s, %v", ts, err)
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
