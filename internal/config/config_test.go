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

func TestResolveRejectsABadMemoryLimit(t *testing.T) {
	c := Default()
	c.MemoryLimit = "much"
	if err := c.Resolve(); err == nil {
		t.Fatal("accepted --memory-limit much")
	}
	c.MemoryLimit = "512MiB"
	if err := c.Resolve(); err != nil || c.MemoryLimitBytes != 512<<20 {
		t.Fatalf("%v %d", err, c.MemoryLimitBytes)
	}
}
