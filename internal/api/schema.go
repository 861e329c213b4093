package api

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// The JSON Schemas of what the API writes, derived from the code that
// writes it: a record kind's rows from its table's Arrow columns (as
// values.go writes them), the other answers from the Go types that
// encoding/json writes. A type that writes itself (json.Marshaler) has
// its schema here, or generating the document panics: a new one is
// noticed by the tests, not written down wrong.

type schema = map[string]any

// decimalPattern is a decimal as the API writes it (values.go, md.Decimal).
const decimalPattern = `^-?[0-9]+(\.[0-9]+)?$`

// schemas collects the document's named schemas (components/schemas).
type schemas struct {
	named map[string]schema
	types map[string]reflect.Type
}

// ref names a schema, building it the first time.
func (c *schemas) ref(name string, build func() schema) schema {
	if _, ok := c.named[name]; !ok {
		c.named[name] = nil // a type that holds itself refers to the name
		c.named[name] = build()
	}
	return schema{"$ref": "#/components/schemas/" + name}
}

// nullable is s or null.
func nullable(s schema) schema {
	if t, ok := s["type"].(string); ok && len(s) > 0 {
		n := make(schema, len(s))
		for k, v := range s {
			n[k] = v
		}
		n["type"] = []string{t, "null"}
		return n
	}
	return schema{"anyOf": []schema{s, {"type": "null"}}}
}

var marshaler = []reflect.Type{reflect.TypeFor[json.Marshaler](), reflect.TypeFor[encoding.TextMarshaler]()}

// goSchema is the schema of what encoding/json writes for a t. A nil
// pointer, slice or map is written null, unless its field is omitted when
// empty (omit).
func (c *schemas) goSchema(t reflect.Type, omit bool) schema {
	if t.Kind() == reflect.Pointer { // before the marshalers: *T has T's methods
		s := c.goSchema(t.Elem(), true)
		if omit {
			return s
		}
		return nullable(s)
	}
	switch t {
	case reflect.TypeFor[md.Timestamp](), reflect.TypeFor[time.Time]():
		return schema{"type": "string", "format": "date-time"}
	case reflect.TypeFor[md.Decimal](), reflect.TypeFor[md.WideDecimal]():
		return c.decimal()
	case reflect.TypeFor[md.Interval]():
		return schema{"type": "string", "enum": intervals()}
	}
	for _, m := range marshaler {
		if t.Implements(m) || reflect.PointerTo(t).Implements(m) {
			panic("api: the OpenAPI document has no schema for " + t.String() + ", which writes itself: add it to goSchema")
		}
	}
	orNull := func(s schema) schema {
		if omit {
			return s
		}
		return nullable(s)
	}
	switch t.Kind() {
	case reflect.Bool:
		return schema{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return schema{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return schema{"type": "number"}
	case reflect.String:
		return schema{"type": "string"}
	case reflect.Interface:
		return schema{} // any JSON value
	case reflect.Slice, reflect.Array:
		return orNull(schema{"type": "array", "items": c.goSchema(t.Elem(), false)})
	case reflect.Map:
		if t.Key().Kind() == reflect.String {
			return orNull(schema{"type": "object", "additionalProperties": c.goSchema(t.Elem(), false)})
		}
	case reflect.Struct:
		name := strings.ToUpper(t.Name()[:1]) + t.Name()[1:]
		if prev, ok := c.types[name]; ok && prev != t {
			panic("api: two types are named " + name + " in the OpenAPI document: " + prev.String() + " and " + t.String())
		}
		c.types[name] = t
		return c.ref(name, func() schema {
			props, required := schema{}, []string{}
			c.fields(t, props, &required)
			return schema{"type": "object", "properties": props, "required": required, "additionalProperties": false}
		})
	}
	panic("api: the OpenAPI document has no schema for " + t.String())
}

// fields adds t's JSON members, as encoding/json writes them.
func (c *schemas) fields(t reflect.Type, props schema, required *[]string) {
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		switch {
		case tag == "-":
			continue
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			c.fields(f.Type, props, required)
			continue
		case !f.IsExported():
			continue
		case name == "":
			name = f.Name
		}
		omit := strings.Contains(","+opts+",", ",omitempty,") || strings.Contains(","+opts+",", ",omitzero,")
		s := c.goSchema(f.Type, omit)
		if format := f.Tag.Get("format"); format != "" { // text of a known form: `format:"date-time"`
			s["format"] = format
		}
		props[name] = s
		if !omit {
			*required = append(*required, name)
		}
	}
}

func (c *schemas) decimal() schema {
	return c.ref("Decimal", func() schema {
		return schema{"type": "string", "pattern": decimalPattern, "examples": []string{"36.667"},
			"description": "An exact decimal, written as a string so that no reader makes a binary float of it"}
	})
}

// rowSchema is a record kind's row as the record routes write it in JSON:
// a member per column of its table (message_id derived for the kinds
// that derive it), each of the column's type. Answers with fields= hold
// only the columns asked for, so no member is required.
func (c *schemas) rowSchema(k record.Any) schema {
	def := &k.Describe().Table
	return c.ref(camel(def.Name)+"Row", func() schema {
		return schema{"type": "object", "properties": c.columnProps(k, nil), "additionalProperties": false, "description": def.Doc}
	})
}

// rowSchemas are the rows a kind's record routes may answer: its own, and
// with each join it declares (with=NAME: the join's columns after its own).
func (c *schemas) rowSchemas(k record.Any) []schema {
	def := &k.Describe().Table
	out := []schema{c.rowSchema(k)}
	for _, name := range joinNames(def.Name) {
		j := joins[def.Name][name]
		out = append(out, c.ref(camel(def.Name)+"With"+camel(name)+"Row", func() schema {
			return schema{"type": "object", "properties": c.columnProps(k, j), "additionalProperties": false,
				"description": def.Doc + " With " + name + " (with=" + name + ")."}
		}))
	}
	return out
}

// columnProps are the members of a kind's rows, and of a join's columns
// after them when j is set.
func (c *schemas) columnProps(k record.Any, j *join) schema {
	def := &k.Describe().Table
	props := schema{}
	add := func(f arrow.Field, doc string) {
		s := c.arrowSchema(f.Type)
		if f.Nullable {
			s = nullable(s)
		}
		s["description"] = doc
		props[f.Name] = s
	}
	for _, f := range columnsOf(k).schema.Fields() {
		doc := "Derived, not stored: a name-based UUID (see the table)"
		if field, ok := def.Schema.FindFieldByName(f.Name); ok {
			doc = field.Doc
		}
		add(f, doc)
	}
	if j != nil {
		for _, f := range j.fields {
			add(f, "The joined record's "+f.Name+"; null when none prevailed")
		}
	}
	return props
}

// arrowSchema is the JSON a column of type t is written as (appendJSON).
func (c *schemas) arrowSchema(t arrow.DataType) schema {
	switch t := t.(type) {
	case *arrow.StringType:
		return schema{"type": "string"}
	case *arrow.Int64Type, *arrow.Int32Type:
		return schema{"type": "integer"}
	case *arrow.BooleanType:
		return schema{"type": "boolean"}
	case *arrow.Float64Type:
		return schema{"type": "number"}
	case *arrow.TimestampType:
		return schema{"type": "string", "format": "date-time"}
	case *arrow.Decimal128Type:
		return c.decimal()
	case *arrow.ListType:
		items := c.arrowSchema(t.Elem())
		if t.ElemField().Nullable {
			items = nullable(items)
		}
		return schema{"type": "array", "items": items}
	case *arrow.MapType:
		items := c.arrowSchema(t.ItemType())
		if t.ItemField().Nullable {
			items = nullable(items)
		}
		return schema{"type": "object", "additionalProperties": items}
	}
	panic(fmt.Sprintf("api: the OpenAPI document has no schema for a column of type %s", t))
}

// camel is funding_rates as FundingRates.
func camel(s string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(s, "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}
