package marketdata

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// CheckUTF8 rejects input that is not UTF-8 before anything parses it:
// decoders (Go's strings.ToUpper, encoding/json) would quietly turn each
// bad byte into U+FFFD, and R\xffO would be stored as a new symbol "R�O".
func CheckUTF8(what string, b []byte) error {
	if utf8.Valid(b) {
		return nil
	}
	i := 0
	for i < len(b) {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		i += size
	}
	return &ReasonError{Text: fmt.Sprintf("%s is not UTF-8: byte %d is 0x%02x", what, i+1, b[i]), Code: ReasonInvalidUTF8}
}

// validText checks text fields of a record: UTF-8 (Parquet strings are)
// without control characters.
func validText(field string, texts ...string) error {
	for _, s := range texts {
		if printableASCII(s) {
			continue // what feeds send: no need to decode runes
		}
		if !utf8.ValidString(s) {
			return invalid(field, "%q is not UTF-8", s)
		}
		for _, r := range s {
			if unicode.IsControl(r) {
				return invalid(field, "%q holds a control character (%U)", s, r)
			}
		}
	}
	return nil
}

// validMap checks a map's keys and values as text.
func validMap(field string, m map[string]string) error {
	for k, v := range m {
		if err := validText(field, k, v); err != nil {
			return err
		}
	}
	return nil
}

// printableASCII reports text of bytes 0x20–0x7e only: UTF-8 without
// control characters, checked a byte at a time.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
