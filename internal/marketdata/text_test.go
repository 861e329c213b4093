package marketdata

import "testing"

// Text that is not UTF-8, or holds control characters, is refused with the
// column it is in; CheckUTF8 says where the first bad byte is.
func TestTextMustBeUTF8(t *testing.T) {
	good := Trade{MessageID: MessageID("trade", "RIO", "ASX-RIO-1"), TradeID: "ASX-RIO-1", Symbol: "RIO", Exchange: "ASX",
		AssetClass: Equities, Timestamp: 1_735_689_600_000_000, Price: MustDecimal("1"), Quantity: MustDecimal("1"),
		Currency: "AUD", Side: Unknown, TradeConditions: []string{}, IngestionTimestamp: 1_735_689_600_000_000}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for reason, mutate := range map[string]func(*Trade){
		"invalid_symbol":           func(t *Trade) { t.Symbol = "R\xffO" },
		"invalid_trade_id":         func(t *Trade) { t.TradeID = "ASX-RIO-\xff" },
		"invalid_trade_conditions": func(t *Trade) { t.TradeConditions = []string{"\x00"} },
		"invalid_vendor_data":      func(t *Trade) { t.VendorData = map[string]string{"venue": "\xc3"} },
	} {
		tr := good
		mutate(&tr)
		if err := tr.Validate(); ReasonOf(err) != reason {
			t.Errorf("%s: got %v", reason, err)
		}
	}
	err := CheckUTF8("the line", []byte("7458,R\xffO,RIO TINTO"))
	if ReasonOf(err) != ReasonInvalidUTF8 || err.Error() != "the line is not UTF-8: byte 7 is 0xff" {
		t.Fatalf("%v", err)
	}
	if CheckUTF8("the line", []byte("ÉTHUSDT")) != nil {
		t.Fatal("UTF-8 refused")
	}
}
