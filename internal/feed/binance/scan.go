package binance

import "encoding/json"

// scanEvent fills ev from a flat JSON object whose values are strings
// without escapes, numbers, booleans or null: every trade and bookTicker
// frame. It is the fast path (encoding/json's reflection was two thirds of
// a frame's cost); anything else — nesting, escapes, a value of the wrong
// kind, bad syntax — reports false and takes encoding/json's path, which
// gives the same result or the error to report. Keys match exactly.
func scanEvent(data []byte, ev *event) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return skipSpace(data, i+1) == len(data)
	}
	for {
		key, j, ok := scanString(data, i)
		if !ok {
			return false
		}
		j = skipSpace(data, j)
		if j >= len(data) || data[j] != ':' {
			return false
		}
		j = skipSpace(data, j+1)
		val, end, ok := scanValue(data, j)
		if !ok || !ev.set(key, val) {
			return false
		}
		i = skipSpace(data, end)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return skipSpace(data, i+1) == len(data)
		default:
			return false
		}
	}
}

// set stores one value; false where encoding/json would do otherwise than
// a plain assignment (a type mismatch, a string into a number).
func (ev *event) set(key, val []byte) bool {
	isString := val[0] == '"'
	isNumber := val[0] == '-' || (val[0] >= '0' && val[0] <= '9')
	isNull := string(val) == "null"
	num := func(dst *json.Number) bool {
		switch {
		case isNumber:
			*dst = json.Number(val)
		case isNull:
		default:
			return false
		}
		return true
	}
	str := func(dst *string) bool {
		switch {
		case isString:
			*dst = string(val[1 : len(val)-1])
		case isNull:
		default:
			return false
		}
		return true
	}
	boolean := func(dst **bool) bool {
		switch string(val) {
		case "true", "false":
			b := val[0] == 't'
			*dst = &b
		case "null":
			*dst = nil
		default:
			return false
		}
		return true
	}
	raw := func(dst *json.RawMessage) bool { *dst = val; return true }
	if len(key) != 1 {
		switch string(key) {
		case "result":
			return raw(&ev.Result)
		case "id":
			return raw(&ev.ID)
		case "code":
			return raw(&ev.Code)
		case "msg":
			return str(&ev.Msg)
		case "ps":
			return str(&ev.Pair)
		}
		// Other keys are ignored, unless encoding/json would match them to
		// a field case-insensitively.
		return !foldsToField(key)
	}
	switch key[0] {
	case 'e':
		return str(&ev.Type)
	case 'E':
		return num(&ev.EventTime)
	case 's':
		return str(&ev.Symbol)
	case 't':
		return num(&ev.TradeID)
	case 'T':
		return num(&ev.TradeTime)
	case 'p':
		return raw(&ev.Price)
	case 'q':
		return raw(&ev.Qty)
	case 'm':
		return boolean(&ev.Maker)
	case 'M':
		return boolean(&ev.BestMatch)
	case 'u':
		return num(&ev.UpdateID)
	case 'U':
		return raw(&ev.FirstID)
	case 'b':
		return raw(&ev.Bid)
	case 'B':
		return raw(&ev.BidQty)
	case 'a':
		return raw(&ev.Ask)
	case 'A':
		return raw(&ev.AskQty)
	case 'X':
		return str(&ev.TradeType)
	case 'i':
		return raw(&ev.Index)
	case 'P':
		return raw(&ev.Settle)
	case 'r':
		return raw(&ev.Rate)
	case 'S', 'Q', 'x', 'I', 'R':
		return false // would fold onto s, q, X, i, r
	}
	return true
}

// foldsToField reports whether a multi-letter key equals a field's name
// but for case ("RESULT", "Id").
func foldsToField(key []byte) bool {
	for _, name := range [...]string{"result", "id", "code", "msg", "ps"} {
		if len(key) == len(name) {
			same := true
			for i := range key {
				if key[i]|0x20 != name[i] {
					same = false
					break
				}
			}
			if same {
				return true
			}
		}
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString reads a string without escapes at b[i]: its contents and the
// index after its closing quote.
func scanString(b []byte, i int) (s []byte, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, 0, false // escapes, control bytes, UTF-8 checks: encoding/json's job
		}
	}
	return nil, 0, false
}

// scanValue reads a scalar at b[i] (a string with its quotes, a number, a
// literal) and the index after it; objects and arrays are not scalars.
func scanValue(b []byte, i int) (val []byte, end int, ok bool) {
	if i >= len(b) {
		return nil, 0, false
	}
	switch c := b[i]; {
	case c == '"':
		_, end, ok := scanString(b, i)
		if !ok {
			return nil, 0, false
		}
		return b[i:end], end, true
	case c == '-' || (c >= '0' && c <= '9'):
		j := i + 1
		for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == '.' || b[j] == 'e' || b[j] == 'E' || b[j] == '+' || b[j] == '-') {
			j++
		}
		if !validNumber(b[i:j]) {
			return nil, 0, false
		}
		return b[i:j], j, true
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
				return b[i : i+len(lit)], i + len(lit), true
			}
		}
	}
	return nil, 0, false
}

// validNumber is JSON's number grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?
func validNumber(n []byte) bool {
	i := 0
	if i < len(n) && n[i] == '-' {
		i++
	}
	digits := func() int {
		s := i
		for i < len(n) && n[i] >= '0' && n[i] <= '9' {
			i++
		}
		return i - s
	}
	switch {
	case i < len(n) && n[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(n) && n[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(n) && (n[i] == 'e' || n[i] == 'E') {
		i++
		if i < len(n) && (n[i] == '+' || n[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(n)
}
