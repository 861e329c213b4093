package marketdata

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Exchange is what K2 knows about a venue: how its codes read, which asset
// class it trades, and the zone its trading day runs in.
type Exchange struct {
	Code       string     // upper case, as stored in the exchange column
	Name       string     // for people
	AssetClass AssetClass // what it lists
	Timezone   string     // IANA zone of the trading day
	Currency   string     // settlement currency; "" where each pair has its own quote asset
	loc        *time.Location
}

// Location returns the exchange's time zone.
func (e Exchange) Location() *time.Location { return e.loc }

// LocalDate returns the exchange-local trading date of an instant.
func (e Exchange) LocalDate(t Timestamp) string {
	return t.Time().In(e.loc).Format(time.DateOnly)
}

var exchanges = map[string]*Exchange{}

func register(e Exchange) {
	loc, err := time.LoadLocation(e.Timezone)
	if err != nil {
		panic(fmt.Sprintf("exchange %s: zone %s: %v", e.Code, e.Timezone, err))
	}
	e.loc = loc
	exchanges[e.Code] = &e
}

func init() {
	register(Exchange{Code: "ASX", Name: "Australian Securities Exchange", AssetClass: Equities, Timezone: "Australia/Sydney", Currency: "AUD"})
	register(Exchange{Code: "BINANCE", Name: "Binance", AssetClass: Crypto, Timezone: "UTC"})
	// Binance's futures are venues of their own: their ids are their own
	// sequences, and their prices must never meet spot's in a bar.
	register(Exchange{Code: "BINANCE_USDM", Name: "Binance USD-M futures", AssetClass: Futures, Timezone: "UTC"})
	register(Exchange{Code: "BINANCE_COINM", Name: "Binance COIN-M futures (quantities in contracts)", AssetClass: Futures, Timezone: "UTC"})
	register(Exchange{Code: "KRAKEN", Name: "Kraken", AssetClass: Crypto, Timezone: "UTC"})
	register(Exchange{Code: "SYNTH", Name: "K2 synthetic market", AssetClass: Crypto, Timezone: "UTC", Currency: "USD"})
}

// LookupExchange finds an exchange by code, case-insensitively.
func LookupExchange(code string) (Exchange, error) {
	if e, ok := exchanges[strings.ToUpper(strings.TrimSpace(code))]; ok {
		return *e, nil
	}
	return Exchange{}, fmt.Errorf("unknown exchange %q (known: %s)", code, strings.Join(ExchangeCodes(), ", "))
}

// ExchangeCodes lists the known exchange codes in order.
func ExchangeCodes() []string {
	codes := make([]string, 0, len(exchanges))
	for c := range exchanges {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	return codes
}

// Assets splits crypto pair symbols such as BTCUSDT into base and quote by
// the longest known quote-asset suffix. The list is configuration: venues add
// quote assets over time.
type Assets struct {
	quotes  []string          // longest first, so USDT wins over USD
	aliases map[string]string // venue spelling → common code, e.g. XBT → BTC
}

// DefaultQuoteAssets are the quote assets recognised unless configured otherwise.
var DefaultQuoteAssets = []string{
	"USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "DAI",
	"BTC", "ETH", "BNB", "EUR", "GBP", "AUD", "USD", "JPY", "TRY", "BRL", "ZAR", "UAH", "NGN",
}

// NewAssets builds a splitter from quote assets and aliases; nil means the defaults.
func NewAssets(quotes []string, aliases map[string]string) *Assets {
	if quotes == nil {
		quotes = DefaultQuoteAssets
	}
	if aliases == nil {
		aliases = map[string]string{"XBT": "BTC", "XDG": "DOGE"}
	}
	q := slices.Clone(quotes)
	for i := range q {
		q[i] = strings.ToUpper(q[i])
	}
	sort.SliceStable(q, func(i, j int) bool { return len(q[i]) > len(q[j]) })
	return &Assets{quotes: q, aliases: aliases}
}

// DefaultAssets uses DefaultQuoteAssets and the XBT → BTC alias.
var DefaultAssets = NewAssets(nil, nil)

// Normalize maps a venue's asset spelling to its common code (XBT → BTC).
func (a *Assets) Normalize(asset string) string {
	asset = strings.ToUpper(asset)
	if c, ok := a.aliases[asset]; ok {
		return c
	}
	return asset
}

// Split returns base and quote of a pair given as "BTCUSDT", "BTC/USDT" or
// "XBT/USD" (aliases applied).
func (a *Assets) Split(pair string) (base, quote string, err error) {
	pair = strings.ToUpper(strings.TrimSpace(pair))
	if b, q, ok := strings.Cut(pair, "/"); ok {
		if b == "" || q == "" {
			return "", "", fmt.Errorf("pair %q: empty base or quote", pair)
		}
		return a.Normalize(b), a.Normalize(q), nil
	}
	for _, q := range a.quotes {
		if len(pair) > len(q) && strings.HasSuffix(pair, q) {
			return a.Normalize(pair[:len(pair)-len(q)]), q, nil
		}
	}
	return "", "", fmt.Errorf("pair %q: no known quote asset suffix", pair)
}

// QuoteOf finds the quote asset a symbol ends with, for venues whose
// symbols are names of their own (Binance's BTCUSDT, ÉTHUSDT,
// ../../ETHUSDT): the symbol is stored as the venue spells it, and a "/"
// in it is a character, not a separator.
func (a *Assets) QuoteOf(symbol string) (string, error) {
	for _, q := range a.quotes {
		if len(symbol) > len(q) && strings.HasSuffix(symbol, q) {
			return q, nil
		}
	}
	return "", fmt.Errorf("pair %q: no known quote asset suffix", symbol)
}

// Symbol returns the stored symbol of a pair: base and quote joined without
// a separator, aliases applied ("XBT/USD" → "BTCUSD").
func (a *Assets) Symbol(pair string) (symbol, quote string, err error) {
	b, q, err := a.Split(pair)
	if err != nil {
		return "", "", err
	}
	return b + q, q, nil
}
