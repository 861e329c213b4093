package marketdata

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// Decimal is an exact fixed-point number stored as units of 10⁻⁸: the
// representation of Iceberg and Avro decimal(18,8). An int64 holds every
// decimal(18,8) value (at most 10¹⁸−1 units), so prices and sizes never pass
// through float64 and arithmetic on them stays exact and allocation-free.
type Decimal int64

const (
	// DecimalScale is the number of digits after the point.
	DecimalScale = 8
	// DecimalPrecision is the total number of significant digits.
	DecimalPrecision = 18
	// decimalIntDigits is how many digits may stand before the point.
	decimalIntDigits = DecimalPrecision - DecimalScale
	// MaxDecimalUnits is the largest value decimal(18,8) can hold, in units.
	MaxDecimalUnits = 999_999_999_999_999_999
	unitsPerOne     = 100_000_000
)

// ErrDecimal is wrapped by every decimal parse error.
var ErrDecimal = errors.New("invalid decimal")

// DecimalFromUnits returns the decimal whose value is units × 10⁻⁸.
func DecimalFromUnits(units int64) Decimal { return Decimal(units) }

// Units returns the value in units of 10⁻⁸.
func (d Decimal) Units() int64 { return int64(d) }

// ParseDecimal parses an exchange's decimal text exactly: plain digits with
// an optional point ("105433.6", ".5", "100") or JSON's exponent form
// ("1.5e-05"). It rejects what decimal(18,8) cannot hold without rounding:
// negative values, more than 10 digits before the point and more than 8
// significant digits after it. Trailing zeros beyond the 8th place are fine.
func ParseDecimal(s string) (Decimal, error) {
	d, err := parseDecimal(s)
	if err != nil {
		return 0, fmt.Errorf("%w %q: %s", ErrDecimal, s, err)
	}
	return d, nil
}

// ParseSignedDecimal is ParseDecimal for the values that may be negative
// (funding rates); prices and sizes never are.
func ParseSignedDecimal(s string) (Decimal, error) {
	rest, neg := strings.CutPrefix(s, "-")
	if !neg {
		return ParseDecimal(s)
	}
	d, err := parseDecimal(rest)
	if err != nil {
		return 0, fmt.Errorf("%w %q: %s", ErrDecimal, s, err)
	}
	return -d, nil
}

// MustDecimal is ParseDecimal for constants in code and tests; it panics on bad input.
func MustDecimal(s string) Decimal {
	d, err := ParseDecimal(s)
	if err != nil {
		panic(err)
	}
	return d
}

func parseDecimal(s string) (Decimal, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	body := s
	switch body[0] {
	case '-':
		return 0, errors.New("negative values are not allowed")
	case '+':
		body = body[1:]
	}
	exp := 0
	if i := strings.IndexAny(body, "eE"); i >= 0 {
		e, err := strconv.Atoi(body[i+1:])
		if err != nil || e > 40 || e < -40 {
			return 0, errors.New("bad exponent")
		}
		exp, body = e, body[:i]
	}
	intPart, fracPart := body, ""
	if i := strings.IndexByte(body, '.'); i >= 0 {
		intPart, fracPart = body[:i], body[i+1:]
	}
	if intPart == "" && fracPart == "" {
		return 0, errors.New("no digits")
	}
	for _, part := range [2]string{intPart, fracPart} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return 0, fmt.Errorf("unexpected character %q", part[i])
			}
		}
	}
	// Shift the point by the exponent, then normalise both sides.
	digits := intPart + fracPart
	point := len(intPart) + exp
	if point < 0 {
		digits = strings.Repeat("0", -point) + digits
		point = 0
	}
	if point > len(digits) {
		digits += strings.Repeat("0", point-len(digits))
	}
	written := len(digits) - point // digits after the point, as given
	intPart = strings.TrimLeft(digits[:point], "0")
	fracPart = strings.TrimRight(digits[point:], "0")
	if len(intPart) > decimalIntDigits {
		return 0, fmt.Errorf("%d digits before the point, decimal(18,8) allows %d", len(intPart), decimalIntDigits)
	}
	if len(fracPart) > DecimalScale {
		if written != len(fracPart) {
			return 0, fmt.Errorf("%d digits after the point (%d without trailing zeros), decimal(18,8) allows %d", written, len(fracPart), DecimalScale)
		}
		return 0, fmt.Errorf("%d digits after the point, decimal(18,8) allows %d", written, DecimalScale)
	}
	var units int64
	for i := 0; i < len(intPart); i++ {
		units = units*10 + int64(intPart[i]-'0')
	}
	for i := 0; i < DecimalScale; i++ {
		units *= 10
		if i < len(fracPart) {
			units += int64(fracPart[i] - '0')
		}
	}
	return Decimal(units), nil
}

// String formats the value without trailing zeros: "105433.6", "0.00027625", "100".
func (d Decimal) String() string {
	var buf [24]byte
	return string(d.AppendText(buf[:0]))
}

// AppendText appends the String form to b.
func (d Decimal) AppendText(b []byte) []byte {
	u := int64(d)
	if u < 0 {
		b = append(b, '-')
		u = -u
	}
	b = strconv.AppendInt(b, u/unitsPerOne, 10)
	frac := u % unitsPerOne
	if frac == 0 {
		return b
	}
	var f [DecimalScale]byte
	for i := DecimalScale - 1; i >= 0; i-- {
		f[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := DecimalScale
	for f[n-1] == '0' {
		n--
	}
	b = append(b, '.')
	return append(b, f[:n]...)
}

// IsZero reports whether the value is zero.
func (d Decimal) IsZero() bool { return d == 0 }

// Rat returns the exact value as a rational number.
func (d Decimal) Rat() *big.Rat { return big.NewRat(int64(d), unitsPerOne) }

// MarshalJSON writes the value as a JSON string, so no reader turns it into a float.
func (d Decimal) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 24)
	b = append(b, '"')
	b = d.AppendText(b)
	return append(b, '"'), nil
}

// UnmarshalJSON accepts a JSON string or number.
func (d *Decimal) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := ParseDecimal(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// NullDecimal is a Decimal that may be absent, such as an empty quote side.
type NullDecimal struct {
	Decimal Decimal
	Valid   bool
}

// SomeDecimal returns a present NullDecimal.
func SomeDecimal(d Decimal) NullDecimal { return NullDecimal{Decimal: d, Valid: true} }

// String returns the decimal's text, or "" when absent.
func (n NullDecimal) String() string {
	if !n.Valid {
		return ""
	}
	return n.Decimal.String()
}

// MarshalJSON writes null when absent.
func (n NullDecimal) MarshalJSON() ([]byte, error) {
	if !n.Valid {
		return []byte("null"), nil
	}
	return n.Decimal.MarshalJSON()
}

// UnmarshalJSON accepts null, a JSON string or a number.
func (n *NullDecimal) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = NullDecimal{}
		return nil
	}
	n.Valid = true
	return n.Decimal.UnmarshalJSON(b)
}

// DecimalFromScaled converts an exact value given as unscaled × 10^-scale
// (what DuckDB and Parquet hand back) into a Decimal. It fails when the value
// needs more than 8 decimals or does not fit decimal(18,8).
func DecimalFromScaled(unscaled *big.Int, scale int) (Decimal, error) {
	v := new(big.Int).Set(unscaled)
	switch {
	case scale < DecimalScale:
		v.Mul(v, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(DecimalScale-scale)), nil))
	case scale > DecimalScale:
		div := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale-DecimalScale)), nil)
		q, r := new(big.Int).QuoRem(v, div, new(big.Int))
		if r.Sign() != 0 {
			return 0, fmt.Errorf("%w: %s×10^-%d needs more than %d decimals", ErrDecimal, unscaled, scale, DecimalScale)
		}
		v = q
	}
	if !v.IsInt64() || v.Int64() > MaxDecimalUnits || v.Int64() < -MaxDecimalUnits {
		return 0, fmt.Errorf("%w: %s×10^-%d does not fit decimal(18,8)", ErrDecimal, unscaled, scale)
	}
	return Decimal(v.Int64()), nil
}

// RoundRat rounds an exact rational to 8 decimals, half away from zero (the
// rounding of SQL's ROUND and of Python's Decimal ROUND_HALF_UP), so derived
// values such as a VWAP are reproducible by any exact computation.
func RoundRat(r *big.Rat) (Decimal, error) {
	return RoundQuo(new(big.Int).Mul(r.Num(), big.NewInt(unitsPerOne)), r.Denom())
}

// RoundQuo is num/den units (den > 0) rounded as RoundRat rounds: a
// quotient of sums, such as a VWAP, without reducing the fraction first.
func RoundQuo(num, den *big.Int) (Decimal, error) {
	scaled := num
	q, rem := new(big.Int).QuoRem(scaled, den, new(big.Int))
	// Compare 2·|rem| with den to round half away from zero.
	rem.Abs(rem).Lsh(rem, 1)
	if rem.Cmp(den) >= 0 {
		if scaled.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	if !q.IsInt64() || q.Int64() > MaxDecimalUnits || q.Int64() < -MaxDecimalUnits {
		r := new(big.Rat).SetFrac(num, new(big.Int).Mul(den, big.NewInt(unitsPerOne)))
		return 0, fmt.Errorf("%w: %s does not fit decimal(18,8)", ErrDecimal, r.FloatString(8))
	}
	return Decimal(q.Int64()), nil
}

// WideDecimal is an exact decimal with 8 places and no upper bound: sums
// such as a day's volume of a token quoted in billions outgrow
// decimal(18,8).
type WideDecimal struct {
	Units *big.Int // value × 10⁸
}

// String formats like Decimal.String: "1299.18108", "100".
func (w WideDecimal) String() string {
	if w.Units == nil {
		return "0"
	}
	neg := w.Units.Sign() < 0
	digits := new(big.Int).Abs(w.Units).String()
	if len(digits) <= DecimalScale {
		digits = strings.Repeat("0", DecimalScale-len(digits)+1) + digits
	}
	whole, frac := digits[:len(digits)-DecimalScale], strings.TrimRight(digits[len(digits)-DecimalScale:], "0")
	s := whole
	if frac != "" {
		s += "." + frac
	}
	if neg {
		s = "-" + s
	}
	return s
}

// MarshalJSON writes the value as a JSON string.
func (w WideDecimal) MarshalJSON() ([]byte, error) { return []byte(`"` + w.String() + `"`), nil }
