package api

import (
	"strconv"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"

	md "github.com/k2-market-data/k2/internal/marketdata"
)

// The values of a table's Arrow columns as the API writes them: decimals
// as exact strings (never binary floats), times as RFC 3339 UTC with the
// six stored fractional digits, lists as arrays, maps as objects. JSON
// and CSV share them.

// appendJSON appends row i of col as a JSON value.
func appendJSON(b []byte, col arrow.Array, i int) []byte {
	if col.IsNull(i) {
		return append(b, "null"...)
	}
	switch c := col.(type) {
	case *array.String:
		return appendJSONString(b, c.Value(i))
	case *array.Int64:
		return strconv.AppendInt(b, c.Value(i), 10)
	case *array.Int32:
		return strconv.AppendInt(b, int64(c.Value(i)), 10)
	case *array.Boolean:
		return strconv.AppendBool(b, c.Value(i))
	case *array.Timestamp, *array.Decimal128:
		b = append(b, '"')
		b = appendText(b, col, i)
		return append(b, '"')
	case *array.Float64:
		return strconv.AppendFloat(b, c.Value(i), 'g', -1, 64)
	case *array.List:
		start, end := c.ValueOffsets(i)
		b = append(b, '[')
		for j := start; j < end; j++ {
			if j > start {
				b = append(b, ',')
			}
			b = appendJSON(b, c.ListValues(), int(j))
		}
		return append(b, ']')
	case *array.Map:
		start, end := c.ValueOffsets(i)
		keys, items := c.Keys(), c.Items()
		b = append(b, '{')
		for j := start; j < end; j++ {
			if j > start {
				b = append(b, ',')
			}
			b = appendJSONString(b, keys.ValueStr(int(j)))
			b = append(b, ':')
			b = appendJSON(b, items, int(j))
		}
		return append(b, '}')
	}
	return appendJSONString(b, col.ValueStr(i))
}

// appendText appends row i of col as text (CSV): strings as they are,
// lists and maps as JSON, null as nothing.
func appendText(b []byte, col arrow.Array, i int) []byte {
	if col.IsNull(i) {
		return b
	}
	switch c := col.(type) {
	case *array.String:
		return append(b, c.Value(i)...)
	case *array.Timestamp:
		return md.Timestamp(c.Value(i)).AppendText(b)
	case *array.Decimal128:
		return appendDecimal(b, c.Value(i), c.DataType().(*arrow.Decimal128Type).Scale)
	case *array.List, *array.Map:
		return appendJSON(b, col, i)
	}
	return append(b, col.ValueStr(i)...)
}

// appendDecimal writes n at scale exactly, as the lake's decimals print.
func appendDecimal(b []byte, n decimal128.Num, scale int32) []byte {
	if scale == md.DecimalScale && n.FitsInPrecision(18) {
		return md.Decimal(n.LowBits()).AppendText(b)
	}
	return append(b, n.ToString(scale)...)
}

// appendJSONString appends s as a JSON string; text in the lake is UTF-8,
// anything else is replaced rather than passed through.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"
