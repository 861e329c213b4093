package registry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"golang.org/x/sync/singleflight"
)

// ErrIncompatible marks a registration refused because the schema breaks
// the subject's compatibility level; the wrapped message says which
// subject and why. Callers errors.Is it to tell a schema change that needs
// a migration from a registry that is down.
var ErrIncompatible = errors.New("incompatible schema")

// ErrNotFound marks a subject, version or schema id the registry does not
// have.
var ErrNotFound = errors.New("not found")

// Client is the part of a Confluent-compatible registry K2 needs: register
// a schema, fetch one by the id carried in each message, set a subject's
// level. It wraps franz-go's sr client, which K2 already depends on for
// Kafka, rather than re-implementing the HTTP details. Safe for concurrent
// use.
type Client struct {
	url      string
	sr       *sr.Client
	retryFor time.Duration

	mu    sync.RWMutex
	byID  map[uint32]string
	fetch singleflight.Group
}

// ClientOption configures NewClient.
type ClientOption func(*clientOptions)

type clientOptions struct {
	httpClient *http.Client
	user, pass string
	retryFor   *time.Duration
}

// WithRegisterRetry sets how long Register keeps trying while the
// registry is unreachable or failing (5xx): a producer waits out a
// registry restart rather than failing. Default 30 seconds; 0 tries once.
func WithRegisterRetry(d time.Duration) ClientOption {
	return func(o *clientOptions) { o.retryFor = &d }
}

// WithHTTPClient sets the HTTP client (timeouts, TLS, transport); the
// default is sr's, with a 5 second timeout.
func WithHTTPClient(c *http.Client) ClientOption {
	return func(o *clientOptions) { o.httpClient = c }
}

// WithBasicAuth authenticates every request, as managed registries
// require.
func WithBasicAuth(user, pass string) ClientOption {
	return func(o *clientOptions) { o.user, o.pass = user, pass }
}

// NewClient returns a client of the registry at url (for example
// http://127.0.0.1:8081).
func NewClient(url string, opts ...ClientOption) (*Client, error) {
	url = strings.TrimRight(strings.TrimSpace(url), "/")
	if url == "" {
		return nil, errors.New("schema registry: no URL")
	}
	var o clientOptions
	for _, opt := range opts {
		opt(&o)
	}
	srOpts := []sr.ClientOpt{sr.URLs(url), sr.UserAgent("k2")}
	if o.httpClient != nil {
		srOpts = append(srOpts, sr.HTTPClient(o.httpClient))
	}
	if o.user != "" || o.pass != "" {
		srOpts = append(srOpts, sr.BasicAuth(o.user, o.pass))
	}
	cl, err := sr.NewClient(srOpts...)
	if err != nil {
		return nil, fmt.Errorf("schema registry %s: %w", url, err)
	}
	c := &Client{url: url, sr: cl, byID: make(map[uint32]string), retryFor: 30 * time.Second}
	if o.retryFor != nil {
		c.retryFor = *o.retryFor
	}
	return c, nil
}

// URL is the registry the client talks to.
func (c *Client) URL() string { return c.url }

// Register registers an Avro schema under subject and returns its global
// id; registering a schema the subject already has returns the id it has.
// A schema the subject's level refuses yields an error wrapping
// ErrIncompatible.
func (c *Client) Register(ctx context.Context, subject, schemaText string) (uint32, error) {
	deadline := time.Now().Add(c.retryFor)
	wait := 100 * time.Millisecond
	var id int
	var err error
	for {
		id, err = c.sr.RegisterSchema(ctx, subject, sr.Schema{Schema: schemaText, Type: sr.TypeAvro}, -1, -1)
		if err == nil || !unavailable(err) || time.Now().Add(wait).After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return 0, c.wrap(fmt.Sprintf("register schema under subject %q", subject), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
	if err != nil {
		return 0, c.wrap(fmt.Sprintf("register schema under subject %q", subject), err)
	}
	if id <= 0 || id > math.MaxUint32 {
		return 0, fmt.Errorf("schema registry %s: register schema under subject %q: registry answered id %d", c.url, subject, id)
	}
	return uint32(id), nil
}

// SchemaByID returns the schema text with a global id. Ids are immutable in
// a Confluent registry, so answers are cached for the client's life and a
// consumer asks the registry once per id, not once per message.
func (c *Client) SchemaByID(ctx context.Context, id uint32) (string, error) {
	if s, ok := c.cached(id); ok {
		return s, nil
	}
	// One request per id however many goroutines miss at once: a burst
	// of messages carrying a new id should not become a burst of fetches.
	// The waiters share the first caller's outcome, including a
	// cancellation of its context; a later call simply fetches again.
	v, err, _ := c.fetch.Do(strconv.FormatUint(uint64(id), 10), func() (any, error) {
		if s, ok := c.cached(id); ok {
			return s, nil
		}
		s, err := c.sr.SchemaByID(ctx, int(id))
		if err != nil {
			return nil, c.wrap(fmt.Sprintf("schema id %d", id), err)
		}
		if s.Type != sr.TypeAvro {
			return nil, fmt.Errorf("schema registry %s: schema id %d is %s, not AVRO", c.url, id, s.Type)
		}
		c.mu.Lock()
		c.byID[id] = s.Schema
		c.mu.Unlock()
		return s.Schema, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

func (c *Client) cached(id uint32) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, ok := c.byID[id]
	return s, ok
}

// Subjects lists the registry's subjects: a cheap question that proves it
// answers (health checks ask it).
func (c *Client) Subjects(ctx context.Context) ([]string, error) {
	subjects, err := c.sr.Subjects(ctx)
	if err != nil {
		return nil, c.wrap("list subjects", err)
	}
	return subjects, nil
}

// SetCompatibility sets subject's compatibility level (one of the Compat
// constants, in any case), or the global level when subject is "".
func (c *Client) SetCompatibility(ctx context.Context, subject, level string) error {
	what := fmt.Sprintf("set compatibility of subject %q to %s", subject, level)
	if subject == "" {
		what = "set global compatibility to " + level
	}
	var l sr.CompatibilityLevel
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("schema registry %s: %s: %w", c.url, what, err)
	}
	res := c.sr.SetCompatibility(ctx, sr.SetCompatibility{Level: l}, subject)
	if err := res[0].Err; err != nil {
		return c.wrap(what, err)
	}
	return nil
}

// unavailable reports a failure of the registry rather than an answer:
// no connection, or a 5xx status.
func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var re *sr.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode >= 500
	}
	return true
}

// wrap names the registry and the operation (with its subject or id) in an
// error, and marks refusals callers act on.
func (c *Client) wrap(what string, err error) error {
	var re *sr.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.ErrorCode == 409 || (re.ErrorCode == 0 && re.StatusCode == http.StatusConflict):
			return fmt.Errorf("schema registry %s: %s: %w: %w", c.url, what, ErrIncompatible, err)
		case sr.IsNotFoundError(re.ErrorCode) || re.StatusCode == http.StatusNotFound:
			return fmt.Errorf("schema registry %s: %s: %w: %w", c.url, what, ErrNotFound, err)
		}
		return fmt.Errorf("schema registry %s: %s: HTTP %d: %w", c.url, what, re.StatusCode, err)
	}
	return fmt.Errorf("schema registry %s: %s: %w", c.url, what, err)
}
