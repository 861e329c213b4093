package marketdata

import (
	"encoding/json"
	"errors"
)

// Dead-letter reasons: the one vocabulary of why a line, frame or message
// was set aside, shared by the loaders' dead-letter files, the feeds' and
// the sink's dead-letter topics and the metrics that count them. A
// validation failure is "invalid_<column>" (InvalidReason).
const (
	ReasonParse              = "parse"               // the input is not what its format says
	ReasonMalformedJSON      = "malformed_json"      // not JSON at all
	ReasonWrongType          = "wrong_type"          // JSON whose value has the wrong type
	ReasonUnknownEvent       = "unknown_event"       // a well-formed event K2 neither asked for nor knows
	ReasonNotWireFormat      = "not_wire_format"     // a Kafka message without the Confluent header
	ReasonUnknownSchemaID    = "unknown_schema_id"   // a schema id the registry does not know
	ReasonIncompatibleSchema = "incompatible_schema" // a writer schema K2 cannot read as its record
	ReasonUndecodable        = "undecodable"         // an Avro body that does not decode
	ReasonInvalidUTF8        = "invalid_utf8"        // text that is not UTF-8
)

// Reasons lists the reasons that are not about a column, in a stable order.
var Reasons = []string{ReasonParse, ReasonMalformedJSON, ReasonWrongType, ReasonUnknownEvent,
	ReasonNotWireFormat, ReasonUnknownSchemaID, ReasonIncompatibleSchema, ReasonUndecodable, ReasonInvalidUTF8}

// InvalidReason is the reason of a record whose column failed validation.
func InvalidReason(column string) string { return "invalid_" + column }

// Reasoned is an error that names its own dead-letter reason.
type Reasoned interface {
	error
	ReasonCode() string
}

// ReasonCode implements Reasoned: invalid_<field>.
func (e *ValidationError) ReasonCode() string { return InvalidReason(e.Field) }

// ReasonOf returns the dead-letter reason of err: the reason of the
// outermost error in its chain that names one, the JSON decoder's errors
// by kind, and "parse" for anything else. It returns "" for nil.
func ReasonOf(err error) string {
	if err == nil {
		return ""
	}
	var r Reasoned
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &r):
		return r.ReasonCode()
	case errors.As(err, &syn):
		return ReasonMalformedJSON
	case errors.As(err, &typ):
		return ReasonWrongType
	}
	return ReasonParse
}

// ReasonError is a sentinel error with a reason: packages declare their
// kinds of failure with it and wrap them with detail (%w).
type ReasonError struct {
	Text, Code string
}

func (e *ReasonError) Error() string      { return e.Text }
func (e *ReasonError) ReasonCode() string { return e.Code }
