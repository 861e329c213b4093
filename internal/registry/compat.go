package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hamba/avro/v2"
)

// Compatibility levels, spelled as Confluent spells them on the wire. A
// subject's level decides which earlier versions a new schema is checked
// against and in which direction data must stay readable.
const (
	CompatNone               = "NONE"
	CompatBackward           = "BACKWARD"
	CompatBackwardTransitive = "BACKWARD_TRANSITIVE"
	CompatForward            = "FORWARD"
	CompatForwardTransitive  = "FORWARD_TRANSITIVE"
	CompatFull               = "FULL"
	CompatFullTransitive     = "FULL_TRANSITIVE"
)

// rule is what a level demands: backward means the new schema must read
// data written with the old one (consumers upgrade first), forward means
// the old schema must read data written with the new one (producers
// upgrade first), and transitive extends the check from the latest version
// to every version, because a topic keeps data written with all of them.
type rule struct{ backward, forward, transitive bool }

var rules = map[string]rule{
	CompatNone:               {},
	CompatBackward:           {backward: true},
	CompatBackwardTransitive: {backward: true, transitive: true},
	CompatForward:            {forward: true},
	CompatForwardTransitive:  {forward: true, transitive: true},
	CompatFull:               {backward: true, forward: true},
	CompatFullTransitive:     {backward: true, forward: true, transitive: true},
}

// parseLevel accepts a level in any case, as Confluent does, and returns
// its canonical upper-case spelling.
func parseLevel(s string) (string, bool) {
	l := strings.ToUpper(strings.TrimSpace(s))
	_, ok := rules[l]
	return l, ok
}

// parseSchema parses Avro schema text and derives its identity key.
//
// Each parse gets its own SchemaCache: hamba's default cache is global and
// keyed by full name, and two versions of one record (same name, different
// fields) must never resolve each other's named types.
//
// The key is hamba's full JSON form (MarshalJSON), not the Parsing
// Canonical Form or its fingerprint: the canonical form drops defaults,
// docs, aliases and logical types, so two schemas that differ only in a
// default (and so in compatibility) would share an id and the second would
// skip its compatibility check. The full form still ignores whitespace,
// attribute order and the shorthand {"type":"string"} versus "string",
// which is what keeps cosmetic differences from minting new ids, as
// Confluent's own normalisation does.
func parseSchema(text string) (avro.Schema, string, error) {
	if strings.TrimSpace(text) == "" {
		return nil, "", errors.New("empty schema")
	}
	// hamba treats text that is not JSON as a bare type name; a
	// Confluent registry rejects it, and so do we.
	if !json.Valid([]byte(text)) {
		return nil, "", errors.New("schema is not valid JSON")
	}
	s, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		return nil, "", err
	}
	key, err := json.Marshal(s)
	if err != nil {
		return nil, "", fmt.Errorf("normalising schema: %w", err)
	}
	return s, string(key), nil
}

// checkLevel checks candidate against the versions a subject already has,
// as level demands, and returns one message per violation (empty when the
// candidate may be registered). versions are oldest first.
func checkLevel(level string, candidate avro.Schema, versions []*schemaEntry) []string {
	r := rules[level]
	if len(versions) == 0 || (!r.backward && !r.forward) {
		return nil
	}
	against := versions[len(versions)-1:]
	if r.transitive {
		against = versions
	}
	var msgs []string
	// Newest first: the latest version is the one a reader of the
	// message most likely has in mind.
	for i := len(against) - 1; i >= 0; i-- {
		v := against[i]
		msgs = append(msgs, checkPair(level, candidate, v)...)
	}
	return msgs
}

// checkPair checks candidate against one earlier version in the directions
// level demands, whether or not the level is transitive.
func checkPair(level string, candidate avro.Schema, old *schemaEntry) []string {
	r := rules[level]
	var msgs []string
	if r.backward {
		if err := incompatibility(candidate, old.schema); err != nil {
			msgs = append(msgs, fmt.Sprintf("%s: the new schema cannot read data written with version %d (schema id %d): %v", level, old.version, old.id, err))
		}
	}
	if r.forward {
		if err := incompatibility(old.schema, candidate); err != nil {
			msgs = append(msgs, fmt.Sprintf("%s: version %d (schema id %d) cannot read data written with the new schema: %v", level, old.version, old.id, err))
		}
	}
	return msgs
}

// incompatibility reports why reader cannot read data written with writer,
// or nil if it can, naming the offending field where there is one.
//
// Every check uses a fresh SchemaCompatibility: hamba caches verdicts by
// the schemas' canonical-form fingerprints, which ignore defaults, so a
// shared instance would answer for "field with default" what it had
// computed for "same field without default".
func incompatibility(reader, writer avro.Schema) error {
	err := avro.NewSchemaCompatibility().Compatible(reader, writer)
	if err == nil {
		return nil
	}
	path, missing := locate(reader, writer, "", 0)
	switch {
	case path == "":
		return err
	case missing:
		return fmt.Errorf("field %q is in the reader schema without a default but absent from the writer schema", path)
	default:
		return fmt.Errorf("field %q: %w", path, err)
	}
}

// locate walks two record schemas the way hamba's check does (reader
// fields in order, matched by name or alias) to find the first field that
// makes them incompatible, because hamba's own message names the types but
// not where they are. It returns the dotted path and whether the field is
// missing (rather than of an unreadable type), or "" where the failure is
// not inside a field.
func locate(reader, writer avro.Schema, prefix string, depth int) (string, bool) {
	if depth > 32 {
		return "", false
	}
	rr, ok := deref(reader).(*avro.RecordSchema)
	if !ok {
		return "", false
	}
	wr, ok := deref(writer).(*avro.RecordSchema)
	if !ok {
		return "", false
	}
	if rr.Name() != wr.Name() && !slices.Contains(rr.Aliases(), wr.FullName()) {
		return "", false // the records themselves differ; hamba says so
	}
	for _, f := range rr.Fields() {
		name := prefix + f.Name()
		wf := matchField(wr, f)
		if wf == nil {
			if f.HasDefault() {
				continue
			}
			return name, true
		}
		if avro.NewSchemaCompatibility().Compatible(f.Type(), wf.Type()) != nil {
			if p, m := locate(f.Type(), wf.Type(), name+".", depth+1); p != "" {
				return p, m
			}
			return name, false
		}
	}
	return "", false
}

// matchField finds the writer field a reader field reads, by name or by
// one of the reader field's aliases, as the Avro resolution rules do.
func matchField(writer *avro.RecordSchema, f *avro.Field) *avro.Field {
	for _, wf := range writer.Fields() {
		if wf.Name() == f.Name() || slices.Contains(f.Aliases(), wf.Name()) {
			return wf
		}
	}
	return nil
}

func deref(s avro.Schema) avro.Schema {
	if ref, ok := s.(*avro.RefSchema); ok {
		return ref.Schema()
	}
	return s
}
