package codec

import (
	"encoding/binary"
	"fmt"

	"github.com/k2-market-data/k2/internal/marketdata"
)

// magicByte opens every Confluent wire-format message.
const magicByte = 0

// HeaderSize is the length of the wire-format header: magic byte and schema id.
const HeaderSize = 5

var (
	// ErrNotWireFormat: the message is shorter than the header or does not
	// start with the magic byte, so it was not written by a registry-aware
	// serializer.
	ErrNotWireFormat error = &marketdata.ReasonError{Text: "codec: not Confluent wire format", Code: marketdata.ReasonNotWireFormat}

	// ErrMalformed: the Avro body does not decode with the writer schema
	// (truncated, bad varint, union or enum index out of range, trailing
	// bytes, a decimal that does not fit an int64, a message_id that is not
	// a UUID…).
	ErrMalformed error = &marketdata.ReasonError{Text: "codec: malformed Avro body", Code: marketdata.ReasonUndecodable}

	// ErrIncompatibleSchema: the writer schema cannot be read as K2's
	// record: it does not parse, misses a field that has no default,
	// changes a type, a decimal scale or a timestamp unit, or is another
	// record altogether.
	ErrIncompatibleSchema error = &marketdata.ReasonError{Text: "codec: writer schema incompatible", Code: marketdata.ReasonIncompatibleSchema}
)

// UnknownSchemaError reports a schema id the lookup could not resolve. Err
// is the lookup's error: a registry's 404, but also a timeout or a
// cancelled context, which a consumer may prefer to retry than to
// dead-letter (errors.Is(err, context.DeadlineExceeded) sees through it).
type UnknownSchemaError struct {
	ID  uint32
	Err error
}

func (e *UnknownSchemaError) Error() string {
	return fmt.Sprintf("codec: schema id %d: %v", e.ID, e.Err)
}

func (e *UnknownSchemaError) Unwrap() error { return e.Err }

// ReasonCode is unknown_schema_id.
func (e *UnknownSchemaError) ReasonCode() string { return marketdata.ReasonUnknownSchemaID }

// SchemaError reports a writer schema that cannot be read as the record
// asked for. It matches ErrIncompatibleSchema with errors.Is.
type SchemaError struct {
	ID     uint32 // registry id of the writer schema
	Record string // the K2 record it was to be read as
	Err    error  // why
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("codec: schema id %d cannot be read as %s: %v", e.ID, e.Record, e.Err)
}

func (e *SchemaError) Unwrap() []error { return []error{ErrIncompatibleSchema, e.Err} }

// AppendHeader appends the wire-format header for a schema id.
func AppendHeader(dst []byte, schemaID uint32) []byte {
	return append(dst, magicByte, byte(schemaID>>24), byte(schemaID>>16), byte(schemaID>>8), byte(schemaID))
}

// SplitMessage returns the schema id and Avro body of a wire-format
// message. The body aliases msg.
func SplitMessage(msg []byte) (schemaID uint32, body []byte, err error) {
	if len(msg) < HeaderSize {
		return 0, nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrNotWireFormat, len(msg), HeaderSize)
	}
	if msg[0] != magicByte {
		return 0, nil, fmt.Errorf("%w: magic byte is 0x%02x, not 0x00", ErrNotWireFormat, msg[0])
	}
	return binary.BigEndian.Uint32(msg[1:HeaderSize]), msg[HeaderSize:], nil
}
