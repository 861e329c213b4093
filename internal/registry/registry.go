// Package registry is K2's Avro schema registry: a Confluent-compatible
// server that the embedded mode serves in-process, so a single machine
// needs no Confluent deployment, and the small client K2 uses against any
// Confluent-compatible registry, embedded or production, by URL.
//
// The server speaks the subset of the Confluent REST API that serialisers
// and tools use (subjects, versions, ids, lookup, config, compatibility
// checks), with Confluent's JSON shapes and error codes, so franz-go's sr
// client and other ordinary Confluent clients work against it unchanged.
// Subjects and versions are deleted as Confluent deletes them: softly
// first (hidden, their ids still resolve), then, if asked, permanently.
// Only AVRO schemas are accepted; references, modes other than READWRITE,
// contexts and explicit ids (IMPORT mode) are not supported.
package registry

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hamba/avro/v2"
)

// Option configures Open.
type Option func(*options)

type options struct {
	defaultLevel string
	logger       *slog.Logger
}

// WithDefaultCompatibility sets the global compatibility level used until
// one is set through PUT /config (which is persisted and then wins).
// Confluent's default, BACKWARD, applies otherwise.
func WithDefaultCompatibility(level string) Option {
	return func(o *options) { o.defaultLevel = level }
}

// WithLogger sets where Open reports recovery from a torn log line; the
// default discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// Registry is a Confluent-compatible schema registry persisted in one
// directory. It is safe for concurrent use.
//
// Locking: writeMu serialises changes (check, append, fsync, apply) so ids
// and versions are handed out in log order; mu guards the in-memory state
// and is held for writing only while a durable change is applied, so reads
// are not stalled behind an fsync. A writer holding writeMu may read the
// state without mu, since only writers change it.
type Registry struct {
	handler http.Handler
	logger  *slog.Logger

	writeMu sync.Mutex
	store   *store // nil once closed

	mu       sync.RWMutex
	byID     []*schemaEntry // byID[id-1]: ids are dense from 1, as Confluent's are
	byKey    map[string]*schemaEntry
	subjects map[string]*subjectState
	global   string // the global compatibility level in force
}

// schemaEntry is one version of one subject (or, in byID, the schema of an
// id). Entries of different subjects may share an id (and then text) when
// the same schema is registered under both.
type schemaEntry struct {
	id      int
	version int
	text    string // as first registered under this id
	key     string // identity: see parseSchema
	schema  avro.Schema
	deleted bool // soft-deleted: hidden unless asked for, its id still resolves
}

type subjectState struct {
	// versions in ascending order, soft-deleted ones included; numbers
	// have gaps where versions were deleted permanently.
	versions []*schemaEntry
	level    string // "" when the subject follows the global level
}

// live returns the versions that are not soft-deleted.
func (s *subjectState) live() []*schemaEntry {
	if s == nil {
		return nil
	}
	out := make([]*schemaEntry, 0, len(s.versions))
	for _, v := range s.versions {
		if !v.deleted {
			out = append(out, v)
		}
	}
	return out
}

// find returns version n (-1: the latest), soft-deleted ones only if
// deleted is set.
func (s *subjectState) find(n int, deleted bool) *schemaEntry {
	if s == nil {
		return nil
	}
	for i := len(s.versions) - 1; i >= 0; i-- {
		if v := s.versions[i]; (v.version == n || n == -1) && (deleted || !v.deleted) {
			return v
		}
	}
	return nil
}

// nextVersion is the number a new version gets: one more than any kept,
// soft-deleted or not, as in Confluent.
func (s *subjectState) nextVersion() int {
	if s == nil || len(s.versions) == 0 {
		return 1
	}
	return s.versions[len(s.versions)-1].version + 1
}

// Open opens the registry persisted in dir, creating dir and an empty
// registry if need be, and replays its log. It fails if another Registry
// (in this or another process) has dir open, or if the log is corrupt
// anywhere but in a torn final line, which it drops.
func Open(dir string, opts ...Option) (*Registry, error) {
	o := options{defaultLevel: CompatBackward, logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, opt := range opts {
		opt(&o)
	}
	level, ok := parseLevel(o.defaultLevel)
	if !ok {
		return nil, fmt.Errorf("registry: default compatibility %q is not one of NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE", o.defaultLevel)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	st, recs, torn, err := openStore(dir)
	if err != nil {
		return nil, err
	}
	r := &Registry{
		logger:   o.logger,
		store:    st,
		byKey:    make(map[string]*schemaEntry),
		subjects: make(map[string]*subjectState),
		global:   level,
	}
	for i, rec := range recs {
		if err := r.replay(rec); err != nil {
			st.close()
			return nil, fmt.Errorf("registry: %s line %d: %w", st.path, i+1, err)
		}
	}
	if torn > 0 {
		r.logger.Warn("schema registry dropped a torn last line of its log, left by a crash during an unacknowledged write",
			"log", st.path, "bytes", torn)
	}
	r.handler = r.newHandler()
	return r, nil
}

// Close releases the log and its lock. Requests that would change the
// registry fail afterwards; reads are still answered from memory.
func (r *Registry) Close() error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	if r.store == nil {
		return nil
	}
	err := r.store.close()
	r.store = nil
	return err
}

// replay applies one logged record, checking the invariants that appends
// keep (versions consecutive, ids dense and tied to one schema), so a log
// that was edited or damaged in a way its checksums miss still fails Open.
func (r *Registry) replay(rec record) error {
	switch rec.Op {
	case opSchema:
		if rec.Subject == "" {
			return fmt.Errorf("schema record without a subject")
		}
		parsed, key, err := parseSchema(rec.Schema)
		if err != nil {
			return fmt.Errorf("schema id %d: %w", rec.ID, err)
		}
		s := r.subjects[rec.Subject]
		if want := s.nextVersion(); rec.Version != want {
			return fmt.Errorf("subject %q version %d, expected %d", rec.Subject, rec.Version, want)
		}
		for _, v := range s.live() {
			if v.key == key {
				return fmt.Errorf("subject %q version %d repeats version %d", rec.Subject, rec.Version, v.version)
			}
		}
		switch {
		case rec.ID >= 1 && rec.ID <= len(r.byID):
			if r.byID[rec.ID-1].key != key {
				return fmt.Errorf("schema id %d is registered with two different schemas", rec.ID)
			}
		case rec.ID == len(r.byID)+1:
			if prev, ok := r.byKey[key]; ok {
				return fmt.Errorf("schema id %d repeats the schema of id %d", rec.ID, prev.id)
			}
		default:
			return fmt.Errorf("schema id %d out of sequence (next is %d)", rec.ID, len(r.byID)+1)
		}
		r.applySchema(rec, parsed, key)
	case opConfig:
		level, ok := parseLevel(rec.Compatibility)
		if !ok {
			return fmt.Errorf("unknown compatibility level %q", rec.Compatibility)
		}
		r.applyConfig(rec.Subject, level)
	case opDelete:
		if _, e := r.checkDelete(rec.Subject, rec.Version, rec.Permanent); e != nil {
			return e
		}
		r.applyDelete(rec.Subject, rec.Version, rec.Permanent)
	default:
		return fmt.Errorf("unknown record op %q", rec.Op)
	}
	return nil
}

// applySchema adds a durable schema record to memory. The caller holds
// writeMu (or is replaying, before anyone else can see r).
func (r *Registry) applySchema(rec record, parsed avro.Schema, key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	text := rec.Schema
	if rec.ID <= len(r.byID) {
		text = r.byID[rec.ID-1].text // ids keep the text they were first registered with
	}
	e := &schemaEntry{id: rec.ID, version: rec.Version, text: text, key: key, schema: parsed}
	if rec.ID > len(r.byID) {
		// A copy: the subject's entry may be soft-deleted, the id's not.
		byID := *e
		r.byID = append(r.byID, &byID)
		r.byKey[key] = &byID
	}
	s := r.subjects[rec.Subject]
	if s == nil {
		s = &subjectState{}
		r.subjects[rec.Subject] = s
	}
	s.versions = append(s.versions, e)
}

func (r *Registry) applyConfig(subject, level string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if subject == "" {
		r.global = level
		return
	}
	s := r.subjects[subject]
	if s == nil {
		// Confluent lets a level be set before the subject's first
		// schema, so the first evolution is already checked by it.
		s = &subjectState{}
		r.subjects[subject] = s
	}
	s.level = level
}

// levelOf returns the level in force for a subject; the caller holds mu or
// writeMu.
func (r *Registry) levelOf(subject string) string {
	if s := r.subjects[subject]; s != nil && s.level != "" {
		return s.level
	}
	return r.global
}

// register adds a schema to a subject, or returns the id it already has
// there, following Confluent: the same schema under another subject keeps
// its global id; a new version must satisfy the subject's level.
func (r *Registry) register(subject, text string) (int, *apiError) {
	parsed, key, err := parseSchema(text)
	if err != nil {
		return 0, errInvalidSchema(err)
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	s := r.subjects[subject]
	versions := s.live()
	for _, v := range versions {
		if v.key == key {
			return v.id, nil
		}
	}
	if msgs := checkLevel(r.levelOf(subject), parsed, versions); len(msgs) > 0 {
		return 0, errIncompatible(subject, msgs)
	}
	id := len(r.byID) + 1
	if e, ok := r.byKey[key]; ok {
		id = e.id
	}
	rec := record{Op: opSchema, Subject: subject, Version: s.nextVersion(), ID: id, Schema: text, At: now()}
	if err := r.appendLocked(rec); err != nil {
		return 0, errStore("registering schema", err)
	}
	r.applySchema(rec, parsed, key)
	return id, nil
}

// setLevel sets the global (subject "") or a subject's level.
func (r *Registry) setLevel(subject, level string) *apiError {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	current := r.global
	if subject != "" {
		current = ""
		if s := r.subjects[subject]; s != nil {
			current = s.level
		}
	}
	if current == level {
		return nil // unchanged: keep the log free of no-op lines
	}
	rec := record{Op: opConfig, Subject: subject, Compatibility: level, At: now()}
	if err := r.appendLocked(rec); err != nil {
		return errStore("updating compatibility", err)
	}
	r.applyConfig(subject, level)
	return nil
}

func (r *Registry) appendLocked(rec record) error {
	if r.store == nil {
		return fmt.Errorf("registry is closed")
	}
	return r.store.append(rec)
}

// lookup finds the version of subject whose schema is the same as text.
func (r *Registry) lookup(subject, text string) (*schemaEntry, *apiError) {
	_, key, err := parseSchema(text)
	if err != nil {
		return nil, errInvalidSchema(err)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	live := r.subjects[subject].live()
	if len(live) == 0 {
		return nil, errSubjectNotFound(subject)
	}
	for _, v := range live {
		if v.key == key {
			return v, nil
		}
	}
	return nil, &apiError{status: 404, Code: 40403, Message: "Schema not found"}
}

// version returns a subject's version n, or its latest for n == -1;
// soft-deleted versions only if deleted is set.
func (r *Registry) version(subject string, n int, deleted bool) (*schemaEntry, *apiError) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s := r.subjects[subject]
	if s.find(-1, deleted) == nil {
		return nil, errSubjectNotFound(subject)
	}
	v := s.find(n, deleted)
	if v == nil {
		return nil, errVersionNotFound(n)
	}
	return v, nil
}

// versionNumbers lists a subject's versions, soft-deleted ones too if
// deleted is set.
func (r *Registry) versionNumbers(subject string, deleted bool) ([]int, *apiError) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []int
	if s := r.subjects[subject]; s != nil {
		for _, v := range s.versions {
			if deleted || !v.deleted {
				out = append(out, v.version)
			}
		}
	}
	if len(out) == 0 {
		return nil, errSubjectNotFound(subject)
	}
	return out, nil
}

// subjectNames lists subjects that have at least one version, soft-deleted
// or, if deleted is set, not (a subject with only a config is not listed,
// as in Confluent), sorted.
func (r *Registry) subjectNames(deleted bool) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.subjects))
	for name, s := range r.subjects {
		if s.find(-1, deleted) != nil {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// schemaByID returns the schema of an id while some subject version, even
// a soft-deleted one, uses it: consumers still decode records written with
// a soft-deleted schema, as with Confluent's registry.
func (r *Registry) schemaByID(id int) (*schemaEntry, *apiError) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if id < 1 || id > len(r.byID) || !r.usedLocked(id) {
		return nil, errSchemaIDNotFound(id)
	}
	return r.byID[id-1], nil
}

// usedLocked says whether a subject version uses id; the caller holds mu.
func (r *Registry) usedLocked(id int) bool {
	for _, s := range r.subjects {
		for _, v := range s.versions {
			if v.id == id {
				return true
			}
		}
	}
	return false
}

// subjectVersion is one place a schema id is used.
type subjectVersion struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// usages lists the subject versions that use id, sorted.
func (r *Registry) usages(id int) ([]subjectVersion, *apiError) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if id < 1 || id > len(r.byID) || !r.usedLocked(id) {
		return nil, errSchemaIDNotFound(id)
	}
	out := []subjectVersion{}
	for name, s := range r.subjects {
		for _, v := range s.live() {
			if v.id == id {
				out = append(out, subjectVersion{Subject: name, Version: v.version})
			}
		}
	}
	slices.SortFunc(out, func(a, b subjectVersion) int {
		if c := strings.Compare(a.Subject, b.Subject); c != 0 {
			return c
		}
		return a.Version - b.Version
	})
	return out, nil
}

// compatibility checks text against a subject's version n (-1 latest), or
// against the versions its level names when all is set, returning the
// violations.
func (r *Registry) compatibility(subject string, n int, all bool, text string) ([]string, *apiError) {
	parsed, _, err := parseSchema(text)
	if err != nil {
		return nil, errInvalidSchema(err)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	level := r.levelOf(subject)
	s := r.subjects[subject]
	if all {
		return checkLevel(level, parsed, s.live()), nil // none: nothing to be incompatible with
	}
	if s.find(-1, false) == nil {
		return nil, errSubjectNotFound(subject)
	}
	v := s.find(n, false)
	if v == nil {
		return nil, errVersionNotFound(n)
	}
	return checkPair(level, parsed, v), nil
}

// levels returns the global level and, if set, the subject's own.
func (r *Registry) levels(subject string) (global, own string) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if s := r.subjects[subject]; s != nil {
		own = s.level
	}
	return r.global, own
}

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }
