package marketdata

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestParseDecimalExact(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in    string
		units int64
		text  string
	}{
		{"105433.6", 10543360000000, "105433.6"},
		{"0.00027625", 27625, "0.00027625"},
		{"100", 10000000000, "100"},
		{"36.870", 3687000000, "36.87"},
		{".5", 50000000, "0.5"},
		{"+7", 700000000, "7"},
		{"0", 0, "0"},
		{"0.000000010", 1, "0.00000001"}, // trailing zero past the 8th place is exact
		{"1.5e-05", 1500, "0.000015"},    // JSON exponent form
		{"2E3", 200000000000, "2000"},
		{"9999999999.99999999", MaxDecimalUnits, "9999999999.99999999"},
		{"00012.3400", 1234000000, "12.34"},
	}
	for _, c := range cases {
		d, err := ParseDecimal(c.in)
		if err != nil {
			t.Errorf("ParseDecimal(%q): %v", c.in, err)
			continue
		}
		if d.Units() != c.units || d.String() != c.text {
			t.Errorf("ParseDecimal(%q) = %d units %q, want %d %q", c.in, d.Units(), d, c.units, c.text)
		}
	}
}

func TestParseDecimalRejects(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"":            "empty",
		"-1.5":        "negative",
		"12345678901": "11 digits before the point",
		"0.123456789": "9 digits after the point",
		"1e-9":        "9 digits after the point",
		// Counted as written: twenty digits, the last a zero.
		"0.12345678901234567890": "20 digits after the point (19 without trailing zeros), decimal(18,8) allows 8",
		"0.00000000000000000001": "20 digits after the point, decimal(18,8) allows 8",
		"1.2.3":                  "unexpected character",
		"NaN":                    "unexpected character",
		"1,5":                    "unexpected character",
		" 1":                     "unexpected character",
		".":                      "no digits",
		"1e":                     "bad exponent",
		"99999999999.0000001":    "digits before the point",
	}
	for in, want := range cases {
		_, err := ParseDecimal(in)
		if err == nil {
			t.Errorf("ParseDecimal(%q) accepted", in)
			continue
		}
		if !errors.Is(err, ErrDecimal) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseDecimal(%q) error %q, want it to mention %q", in, err, want)
		}
	}
}

func TestDecimalJSONRoundTrip(t *testing.T) {
	t.Parallel()
	var v struct {
		P Decimal     `json:"p"`
		Q NullDecimal `json:"q"`
		R NullDecimal `json:"r"`
	}
	// Numbers and strings both decode exactly; 0.1+0.2 style float error must not appear.
	if err := json.Unmarshal([]byte(`{"p":105433.6,"q":"0.30000000","r":null}`), &v); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(v)
	if string(out) != `{"p":"105433.6","q":"0.3","r":null}` {
		t.Fatalf("round trip = %s", out)
	}
}

func TestRoundRatHalfUp(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"1/3":          "0.33333333",
		"2/3":          "0.66666667",
		"1/200000000":  "0.00000001", // exactly half a unit rounds up
		"1/200000001":  "0",
		"-1/200000000": "-0.00000001",
		"7":            "7",
	}
	for in, want := range cases {
		r, _ := new(big.Rat).SetString(in)
		d, err := RoundRat(r)
		if err != nil || d.String() != want {
			t.Errorf("RoundRat(%s) = %s, %v; want %s", in, d, err, want)
		}
	}
}

func TestDecimalFromScaled(t *testing.T) {
	t.Parallel()
	d, err := DecimalFromScaled(big.NewInt(3687000), 5)
	if err != nil || d.String() != "36.87" {
		t.Fatalf("got %s, %v", d, err)
	}
	if _, err := DecimalFromScaled(big.NewInt(1), 9); err == nil {
		t.Fatal("9 decimals of precision accepted")
	}
	d, err = DecimalFromScaled(big.NewInt(123000000000), 10)
	if err != nil || d.String() != "12.3" {
		t.Fatalf("got %s, %v", d, err)
	}
}

func TestWideDecimal(t *testing.T) {
	t.Parallel()
	big20, _ := new(big.Int).SetString("123456789012345678901234", 10) // beyond decimal(18,8)
	cases := map[string]WideDecimal{
		"0":                         WideDecimal{},
		"0.00000001":                WideDecimal{big.NewInt(1)},
		"1299.18108":                WideDecimal{big.NewInt(129918108000)},
		"1234567890123456.78901234": WideDecimal{big20},
		"-0.5":                      WideDecimal{big.NewInt(-50000000)},
	}
	for want, w := range cases {
		if w.String() != want {
			t.Errorf("%v formats as %s, want %s", w.Units, w, want)
		}
	}
	if b, _ := json.Marshal(WideDecimal{big20}); string(b) != `"1234567890123456.78901234"` {
		t.Errorf("JSON %s", b)
	}
}

// A quotient of sums is rounded to the nearest unit, halves away from
// zero, the same as the reduced fraction, and what decimal(18,8) cannot
// hold is refused.
func TestRoundQuoIsRoundRat(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20_000 {
		den := big.NewInt(rng.Int64N(1_000_000_000) + 1)
		num := new(big.Int).Mul(den, big.NewInt(rng.Int64N(1_000_000_000_000)))
		num.Add(num, big.NewInt(rng.Int64N(den.Int64())))
		if rng.IntN(3) == 0 { // exactly half
			num.Mul(big.NewInt(rng.Int64N(1_000_000)*2+1), big.NewInt(1))
			den = big.NewInt(2)
		}
		got, err := RoundQuo(num, den)
		// big.Rat's formatting rounds halves away from zero too.
		want := new(big.Rat).SetFrac(num, den).FloatString(0)
		if err != nil || fmt.Sprint(got.Units()) != want {
			t.Fatalf("%s/%s: %d units (%v), want %s", num, den, got.Units(), err, want)
		}
		if r, _ := RoundRat(new(big.Rat).SetFrac(num, new(big.Int).Mul(den, big.NewInt(unitsPerOne)))); r != got {
			t.Fatalf("%s/%s: RoundRat %d units, RoundQuo %d", num, den, r.Units(), got.Units())
		}
	}
	if _, err := RoundQuo(new(big.Int).Lsh(big.NewInt(1), 80), big.NewInt(1)); err == nil {
		t.Error("2⁸⁰ units fit decimal(18,8)")
	}
}
