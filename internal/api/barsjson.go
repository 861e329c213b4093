package api

import (
	"strconv"

	md "github.com/k2-market-data/k2/internal/marketdata"
)

// barList is bars answered as encoding/json would write them, appended
// directly: a bars answer is 60 bars of eight decimals and times, which
// encoding/json formats through each value's MarshalJSON and then checks
// again byte by byte.
type barList []md.Bar

func (bl barList) appendJSON(b []byte) []byte {
	if len(bl) == 0 {
		return append(b, "[]"...)
	}
	b = append(b, '[')
	for i := range bl {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendBar(b, &bl[i])
	}
	return append(b, ']')
}

func appendBar(b []byte, bar *md.Bar) []byte {
	b = append(b, `{"symbol":`...)
	b = appendJSONString(b, bar.Symbol)
	b = append(b, `,"exchange":`...)
	b = appendJSONString(b, bar.Exchange)
	b = append(b, `,"interval":`...)
	b = appendJSONString(b, string(bar.Interval))
	for _, f := range []struct {
		key string
		t   md.Timestamp
	}{{`,"window_start":"`, bar.WindowStart}, {`,"window_end":"`, bar.WindowEnd}} {
		b = append(b, f.key...)
		b = append(f.t.AppendText(b), '"')
	}
	for _, f := range []struct {
		key string
		d   md.Decimal
	}{{`,"open":"`, bar.Open}, {`,"high":"`, bar.High}, {`,"low":"`, bar.Low}, {`,"close":"`, bar.Close}} {
		b = append(b, f.key...)
		b = append(f.d.AppendText(b), '"')
	}
	b = append(b, `,"volume":"`...)
	b = append(b, bar.Volume.String()...)
	b = append(b, `","trade_count":`...)
	b = strconv.AppendInt(b, bar.TradeCount, 10)
	b = append(b, `,"vwap":"`...)
	b = append(bar.VWAP.AppendText(b), '"')
	if bar.Partial {
		b = append(b, `,"partial":true`...)
	}
	return append(b, '}')
}
