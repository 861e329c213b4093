package config

import "testing"

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"1073741824": 1 << 30, "1GiB": 1 << 30, "896MiB": 896 << 20, "2GB": 2e9, "64 KiB": 64 << 10, "0": 0, "1.5GiB": 3 << 29,
	} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lots", "-1GiB", "1XB"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) accepted", bad)
		}
	}
}

func TestExchangePartitions(t *testing.T) {
	c := Default()
	c.Kafka.ExchangePartitions = "binance=12, ASX=3"
	got, err := c.Kafka.PartitionsByExchange()
	if err != nil || got["BINANCE"] != 12 || got["ASX"] != 3 || len(got) != 2 {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"BINANCE", "BINANCE=0", "=3", "ASX=three", "NYSE=4"} {
		c.Kafka.ExchangePartitions = bad
		if err := c.Resolve(); err == nil {
			t.Errorf("accepted --exchange-partitions %q", bad)
		}
	}
}

func TestResolveRejectsABadMemoryLimit(t *testing.T) {
	c := Default()
	c.Memory.Limit = "much"
	if err := c.Resolve(); err == nil {
		t.Fatal("accepted --memory-limit much")
	}
	c.Memory.Limit = "512MiB"
	if err := c.Resolve(); err != nil || c.Memory.LimitBytes != 512<<20 {
		t.Fatalf("%v %d", err, c.Memory.LimitBytes)
	}
}

func TestAssetList(t *testing.T) {
	c := Default()
	c.DataDir = t.TempDir()
	if err := c.Resolve(); err != nil {
		t.Fatal(err)
	}
	if sym, quote, err := c.Assets.List().Symbol("XBT/USD"); err != nil || sym != "BTCUSD" || quote != "USD" {
		t.Fatalf("default aliases: %s %s %v", sym, quote, err)
	}
	c.Assets.QuoteAssets, c.Assets.Aliases = "usd, PYUSD", "XBT=BTC"
	if err := c.Resolve(); err != nil {
		t.Fatal(err)
	}
	if sym, quote, err := c.Assets.List().Symbol("SOLPYUSD"); err != nil || sym != "SOLPYUSD" || quote != "PYUSD" {
		t.Fatalf("configured quote asset: %s %s %v", sym, quote, err)
	}
	if _, _, err := c.Assets.List().Symbol("BTCUSDT"); err == nil {
		t.Fatal("USDT split although not configured")
	}
	for _, bad := range [][2]string{{"US-D", ""}, {"", "XBT"}, {"", "XBT=B/C"}} {
		c.Assets.QuoteAssets, c.Assets.Aliases = bad[0], bad[1]
		if err := c.Resolve(); err == nil {
			t.Errorf("accepted --quote-assets %q --asset-aliases %q", bad[0], bad[1])
		}
	}
}
