package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
)

// LogFile is the name of the registry's log inside its directory.
const LogFile = "registry.log"

// The registry persists as an append-only log of JSON lines, one record per
// change, replayed at Open. A log rather than a snapshot rewritten on each
// change because registrations are rare, small and must each be durable
// before they are acknowledged: an append costs one write and one fsync
// whatever the registry's size, where a rewrite costs the whole file, a
// rename and a directory fsync; and the log doubles as the history of who
// got which id when.
//
// Each line is {"crc":N,"rec":{...}}: N is the CRC-32C of the exact bytes
// of rec, so a flipped bit in an old line is caught at Open, not served.
//
// A crash (kill -9, power loss) can leave at most the last, unacknowledged
// line half-written, because each line is fsynced before the request that
// wrote it is answered. So replay ignores, and truncates away, bytes after
// the last newline (they would otherwise be glued to the next append and
// become corruption in the middle of the log); any newline-terminated line
// that fails to decode or verify is corruption, and Open fails naming the
// file and line rather than serving a registry with a hole in it.

// Record operations.
const (
	opSchema = "schema" // a schema registered under a subject as a new version
	opConfig = "config" // a compatibility level set, globally (no subject) or for a subject
	opDelete = "delete" // a subject's version (all of them: version 0) soft-deleted, or deleted permanently
)

// record is one logged change. Schema records carry the schema text even
// when their id was minted earlier, so every line can be checked on its own.
type record struct {
	Op            string `json:"op"`
	Subject       string `json:"subject,omitempty"`
	Version       int    `json:"version,omitempty"`
	ID            int    `json:"id,omitempty"`
	Schema        string `json:"schema,omitempty"`
	Compatibility string `json:"compatibility,omitempty"`
	Permanent     bool   `json:"permanent,omitempty"`
	At            string `json:"at,omitempty"` // RFC 3339, for people reading the log
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// store is the open log. It is not safe for concurrent use: the Registry
// serialises writers.
type store struct {
	path string
	f    *os.File
	size int64 // bytes of whole, durable lines
	// broken is set when a failed append could not be rolled back: the
	// file may end in a partial line, so further appends would corrupt
	// the log. Reopening the registry (which truncates it) recovers.
	broken error
}

// openStore opens (creating if need be) and locks the log in dir, and
// returns its records in order and how many bytes of torn tail it dropped.
func openStore(dir string) (*store, []record, int, error) {
	path := filepath.Join(dir, LogFile)
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, fs.ErrNotExist)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("registry: open log: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, nil, 0, fmt.Errorf("registry: lock %s: %w", path, err)
	}
	fail := func(err error) (*store, []record, int, error) {
		unlockFile(f)
		f.Close()
		return nil, nil, 0, err
	}
	if created {
		// The new file's directory entry must be durable too, or a crash
		// could lose the whole log with the first registration in it.
		if err := syncDir(dir); err != nil {
			return fail(fmt.Errorf("registry: sync %s: %w", dir, err))
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fail(fmt.Errorf("registry: read log: %w", err))
	}
	recs, good, err := decodeLog(data)
	if err != nil {
		return fail(fmt.Errorf("registry: %s: %w", path, err))
	}
	torn := len(data) - good
	if torn > 0 {
		if err := f.Truncate(int64(good)); err != nil {
			return fail(fmt.Errorf("registry: truncate torn tail of %s: %w", path, err))
		}
		if err := f.Sync(); err != nil {
			return fail(fmt.Errorf("registry: sync %s: %w", path, err))
		}
	}
	return &store{path: path, f: f, size: int64(good)}, recs, torn, nil
}

// decodeLog decodes every newline-terminated line and returns the records
// and the length of the prefix they occupy; anything after the last
// newline is a torn write and is left out.
func decodeLog(data []byte) ([]record, int, error) {
	var recs []record
	off, line := 0, 0
	for {
		nl := bytes.IndexByte(data[off:], '\n')
		if nl < 0 {
			return recs, off, nil
		}
		line++
		rec, err := decodeLine(data[off : off+nl])
		if err != nil {
			return nil, 0, fmt.Errorf("line %d is corrupt: %w", line, err)
		}
		recs = append(recs, rec)
		off += nl + 1
	}
}

func decodeLine(b []byte) (record, error) {
	var env struct {
		CRC *uint32         `json:"crc"`
		Rec json.RawMessage `json:"rec"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return record{}, err
	}
	if env.CRC == nil || len(env.Rec) == 0 {
		return record{}, errors.New(`missing "crc" or "rec"`)
	}
	if sum := crc32.Checksum(env.Rec, castagnoli); sum != *env.CRC {
		return record{}, fmt.Errorf("checksum %d, line says %d", sum, *env.CRC)
	}
	var rec record
	if err := json.Unmarshal(env.Rec, &rec); err != nil {
		return record{}, err
	}
	return rec, nil
}

// encodeLine frames a record as one log line. The envelope is written by
// hand so the checksummed bytes are exactly the bytes on disk.
func encodeLine(rec record) ([]byte, error) {
	body, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	line := fmt.Appendf(nil, `{"crc":%d,"rec":`, crc32.Checksum(body, castagnoli))
	line = append(line, body...)
	return append(line, "}\n"...), nil
}

// append makes rec durable: it returns only after the line is fsynced, and
// on failure leaves the log as it was (or marks the store broken if it
// cannot), so the caller may report the change as not made.
func (s *store) append(rec record) error {
	if s.f == nil {
		return errors.New("registry is closed")
	}
	if s.broken != nil {
		return s.broken
	}
	line, err := encodeLine(rec)
	if err != nil {
		return err
	}
	_, err = s.f.Write(line)
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		// The line may be partly on disk (or wholly, with its fsync
		// failed): cut it off so the log holds only acknowledged changes.
		if terr := s.f.Truncate(s.size); terr != nil {
			s.broken = fmt.Errorf("log %s may end in a partial line after a failed write (%v) and could not be truncated (%v): reopen the registry to recover", s.path, err, terr)
		} else if serr := s.f.Sync(); serr != nil {
			s.broken = fmt.Errorf("log %s could not be synced after a failed write (%v): %v: reopen the registry to recover", s.path, err, serr)
		}
		return fmt.Errorf("append to %s: %w", s.path, err)
	}
	s.size += int64(len(line))
	return nil
}

func (s *store) close() error {
	if s.f == nil {
		return nil
	}
	unlockFile(s.f)
	err := s.f.Close()
	s.f = nil
	return err
}

// syncDir fsyncs a directory so entries created in it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
