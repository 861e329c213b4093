package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/k2-market-data/k2/internal/bus"
)

func TestTopicsCommands(t *testing.T) {
	b, err := bus.StartBroker(t.TempDir(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	k2 := func(args ...string) (string, string, int) {
		return run(t, append([]string{"topics", args[0], "--brokers", b.Addr(), "--exchange-partitions", "BINANCE=2"}, args[1:]...)...)
	}
	out, errOut, code := k2("create")
	if code != 0 || !strings.Contains(out, "created market.crypto.trades.binance (2 partitions)") {
		t.Fatalf("create: %d %q %q", code, out, errOut)
	}
	out, _, code = k2("create")
	if code != 0 || !strings.HasPrefix(out, "0 topics created") {
		t.Fatalf("second create: %d %q", code, out)
	}
	out, _, code = k2("describe", "--json", "market.crypto.trades.binance", "market.crypto.trades.kraken", "market.equities.reference_data.asx")
	if code != 0 {
		t.Fatalf("describe: %d %q", code, out)
	}
	var infos []bus.TopicInfo
	if err := json.Unmarshal([]byte(out), &infos); err != nil || len(infos) != 3 {
		t.Fatalf("%v %s", err, out)
	}
	want := map[string]int{"market.crypto.trades.binance": 2, "market.crypto.trades.kraken": 6, "market.equities.reference_data.asx": 1}
	for _, i := range infos {
		if i.Partitions != want[i.Topic] {
			t.Errorf("%s has %d partitions, want %d", i.Topic, i.Partitions, want[i.Topic])
		}
	}
	if infos[2].Configs["cleanup.policy"] != "compact" || infos[0].Configs["retention.ms"] != "604800000" {
		t.Errorf("configs %v / %v", infos[0].Configs, infos[2].Configs)
	}
	if _, errOut, code := k2("list", "--exchange-partitions", "NYSE=3"); code == 0 || !strings.Contains(errOut, "NYSE") {
		t.Errorf("unknown exchange accepted: %d %q", code, errOut)
	}
}
