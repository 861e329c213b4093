package binance

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/k2-market-data/k2/internal/marketdata"
)

// A USD-M capture is its own venue: every trade and quote is BINANCE_USDM,
// asset class futures, with ids that cannot meet spot's, and the trade
// type kept.
func TestCaptureUSDM(t *testing.T) {
	t.Parallel()
	c := readCapture(t, "usdm_ethusdt_20240719.gz")
	if len(c.trades) != 12015 || c.quotes != 38239 {
		t.Fatalf("%d trades, %d quotes; want 12015, 38239", len(c.trades), c.quotes)
	}
	for id := int64(4217898224); id <= 4217910238; id++ {
		tr, ok := c.trades[id]
		if !ok {
			t.Fatalf("trade %d missing", id)
		}
		if tr.Exchange != "BINANCE_USDM" || tr.AssetClass != marketdata.Futures || tr.Symbol != "ETHUSDT" || tr.Currency != "USDT" ||
			!strings.HasPrefix(tr.TradeID, "BINANCE_USDM-") || tr.VendorData["trade_type"] != "MARKET" ||
			tr.VendorData["contract_type"] != "PERPETUAL" || len(tr.TradeConditions) != 0 {
			t.Fatalf("trade %d: %+v", id, tr)
		}
	}
	// {"e":"trade","E":1721347202808,"T":1721347202808,"s":"ETHUSDT","t":4217898224,"p":"3424.99","q":"0.022","X":"MARKET","m":false}
	first := c.trades[4217898224]
	if first.Price != marketdata.MustDecimal("3424.99") || first.Quantity != marketdata.MustDecimal("0.022") ||
		first.Side != marketdata.Buy || first.Timestamp != 1721347202808000 ||
		first.MessageID != marketdata.MessageID("trade", "ETHUSDT", "BINANCE_USDM-4217898224") {
		t.Fatalf("first trade %+v", first)
	}
}

// A COIN-M capture: BINANCE_COINM, the contract's own symbol, prices in
// USD and quantities in contracts.
func TestCaptureCOINM(t *testing.T) {
	t.Parallel()
	c := readCapture(t, "cm_btcusd_perp_20240809.gz")
	if len(c.trades) != 2949 || c.quotes != 29219 {
		t.Fatalf("%d trades, %d quotes; want 2949, 29219", len(c.trades), c.quotes)
	}
	for id := int64(849716688); id <= 849719636; id++ {
		tr, ok := c.trades[id]
		if !ok {
			t.Fatalf("trade %d missing", id)
		}
		if tr.Exchange != "BINANCE_COINM" || tr.Symbol != "BTCUSD_PERP" || tr.Currency != "USD" ||
			tr.VendorData["quantity_unit"] != "contracts" || tr.TradeID != "BINANCE_COINM-"+strconv.FormatInt(id, 10) {
			t.Fatalf("trade %d: %+v", id, tr)
		}
	}
}

// The same pair on spot and on futures, with the same trade id: two
// records that never collide and never share a venue.
func TestSpotAndFuturesNeverMeet(t *testing.T) {
	t.Parallel()
	spot, err := ParseFrame([]byte(`{"stream":"ethusdt@trade","data":{"e":"trade","E":1721347202808,"s":"ETHUSDT","t":4217898224,"p":"3425.00","q":"1","T":1721347202808,"m":false,"M":true}}`), received, assets)
	if err != nil {
		t.Fatal(err)
	}
	fut, err := ParseFrame([]byte(`{"stream":"ethusdt@trade","data":{"e":"trade","E":1721347202808,"T":1721347202808,"s":"ETHUSDT","t":4217898224,"p":"3424.99","q":"0.022","X":"MARKET","m":false}}`), received, assets)
	if err != nil {
		t.Fatal(err)
	}
	s, f := spot.Trades[0], fut.Trades[0]
	if s.Exchange != "BINANCE" || s.AssetClass != marketdata.Crypto || f.Exchange != "BINANCE_USDM" ||
		s.TradeID == f.TradeID || s.MessageID == f.MessageID {
		t.Fatalf("spot %s %s %s, futures %s %s %s", s.Exchange, s.TradeID, s.MessageID, f.Exchange, f.TradeID, f.MessageID)
	}
}

// Trades that are not order-book prints keep their type as a condition,
// which bars leave out; the type is in vendor_data for every trade.
func TestFuturesTradeTypes(t *testing.T) {
	t.Parallel()
	line := []byte(`{"stream":"ethusdt@trade","data":{"e":"trade","E":1721347202808,"T":1721347202808,"s":"ETHUSDT","t":4217898224,"p":"3424.99","q":"0.022","X":"MARKET","m":false}}`)
	for _, x := range []string{"MARKET", "INSURANCE_FUND", "ADL", "NA"} {
		ev, err := ParseFrame(bytes.Replace(line, []byte(`"X":"MARKET"`), []byte(`"X":"`+x+`"`), 1), received, assets)
		if err != nil {
			t.Fatal(err)
		}
		tr := ev.Trades[0]
		want := []string{x}
		if x == "MARKET" {
			want = []string{}
		}
		if tr.VendorData["trade_type"] != x || strings.Join(tr.TradeConditions, ",") != strings.Join(want, ",") || tr.TradeConditions == nil {
			t.Errorf("X %s: conditions %q, vendor %v", x, tr.TradeConditions, tr.VendorData)
		}
	}
}

// markPriceUpdate is a funding record: mark, index and settle prices, the
// rate (negative too) and the next funding time; a delivery contract has
// no rate.
func TestMarkPriceUpdate(t *testing.T) {
	t.Parallel()
	ev, err := ParseFrame([]byte(`{"stream":"ethusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1721347203000,"s":"ETHUSDT","p":"3424.98500000","P":"3425.90","i":"3426.11000000","r":"-0.00012345","T":1721376000000}}`), received, assets)
	if err != nil || len(ev.Funding) != 1 {
		t.Fatalf("%+v %v", ev, err)
	}
	f := ev.Funding[0]
	if f.Exchange != "BINANCE_USDM" || f.AssetClass != marketdata.Futures || f.Symbol != "ETHUSDT" || f.Currency != "USDT" ||
		f.MarkPrice != marketdata.MustDecimal("3424.985") || f.IndexPrice.Decimal != marketdata.MustDecimal("3426.11") ||
		f.EstimatedSettlePrice.Decimal != marketdata.MustDecimal("3425.9") || f.FundingRate.Decimal != -marketdata.MustDecimal("0.00012345") ||
		f.NextFundingTime.Timestamp != 1721376000000000 || f.Timestamp != 1721347203000000 ||
		f.MessageID != marketdata.FundingMessageID("ETHUSDT", "BINANCE_USDM", 1721347203000000) {
		t.Fatalf("%+v", f)
	}
	ev, err = ParseFrame([]byte(`{"stream":"btcusd_240927@markPrice","data":{"e":"markPriceUpdate","E":1721347203000,"s":"BTCUSD_240927","ps":"BTCUSD","p":"66000.1","P":"66010.2","i":"65990","r":"","T":0}}`), received, assets)
	if err != nil {
		t.Fatal(err)
	}
	f = ev.Funding[0]
	if f.Exchange != "BINANCE_COINM" || f.FundingRate.Valid || f.NextFundingTime.Valid ||
		f.VendorData["contract_type"] != "DELIVERY" || f.VendorData["delivery_date"] != "2024-09-27" {
		t.Fatalf("delivery contract %+v", f)
	}
	if _, err := ParseFrame([]byte(`{"e":"markPriceUpdate","E":1721347203000,"s":"ETHUSDT","p":"3424.9","r":"1.5"}`), received, assets); err == nil ||
		marketdata.ReasonOf(err) != "invalid_funding_rate" {
		t.Fatalf("a rate of 150%% was accepted: %v", err)
	}
}
