package api

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/k2-market-data/k2/internal/config"
)

// limiter keeps a token bucket per caller and route template: a bucket of
// N requests refilled evenly over the period, so "100/min" lets a caller
// make 100 requests at once and then one every 0.6 s. Buckets live in
// shards, each behind its own lock, and a bucket unused for its whole
// refill period is dropped (it would be full again, so nothing is lost):
// the limiter holds the callers of the last period, and at most
// shardCount*maxBucketsPerShard of those.
type limiter struct {
	def    config.Rate
	routes map[string]config.Rate
	seed   maphash.Seed
	// nextSweep is when a request next sweeps every shard (unix nanos).
	nextSweep atomic.Int64
	shards    [shardCount]limitShard
}

const (
	shardCount         = 64
	maxBucketsPerShard = 1024
	sweepEvery         = time.Minute
)

type limitShard struct {
	mu      sync.Mutex
	buckets map[bucketKey]*bucket
}

type bucketKey struct{ caller, route string }

type bucket struct {
	lim  *rate.Limiter
	last time.Time     // last request
	fill time.Duration // an unused bucket is full again after this
}

func newLimiter(def config.Rate, routes map[string]config.Rate) *limiter {
	l := &limiter{def: def, routes: routes, seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].buckets = map[bucketKey]*bucket{}
	}
	l.nextSweep.Store(time.Now().Add(sweepEvery).UnixNano())
	return l
}

// decision is a request's outcome and what the headers say about it.
type decision struct {
	ok        bool
	rate      config.Rate // Off: the route is not limited
	remaining int         // requests left now
	reset     time.Duration
	retry     time.Duration // until the next request is allowed
}

// take takes one request of caller on route at now.
func (l *limiter) take(caller, route string, now time.Time) decision {
	r, ok := l.routes[route]
	if !ok {
		r = l.def
	}
	if r.Off() {
		return decision{ok: true}
	}
	if next := l.nextSweep.Load(); now.UnixNano() > next && l.nextSweep.CompareAndSwap(next, now.Add(sweepEvery).UnixNano()) {
		l.sweep(now) // once a minute, by one request
	}
	k := bucketKey{caller, route}
	sh := &l.shards[maphash.Comparable(l.seed, k)%shardCount]
	sh.mu.Lock()
	b := sh.buckets[k]
	if b == nil {
		if len(sh.buckets) >= maxBucketsPerShard {
			sh.sweep(now)
			sh.evictOldest()
		}
		b = &bucket{lim: rate.NewLimiter(rate.Limit(float64(r.N)/r.Per.Seconds()), r.N), fill: r.Per}
		sh.buckets[k] = b
	}
	b.last = now
	allowed := b.lim.AllowN(now, 1)
	tokens := b.lim.TokensAt(now)
	sh.mu.Unlock()
	perToken := r.Per / time.Duration(r.N)
	d := decision{ok: allowed, rate: r, remaining: max(int(tokens), 0),
		reset: time.Duration((float64(r.N) - tokens) * float64(perToken))}
	if !allowed {
		d.retry = time.Duration((1 - tokens) * float64(perToken))
	}
	return d
}

// sweep drops every shard's buckets unused for their refill period.
func (l *limiter) sweep(now time.Time) {
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		sh.sweep(now)
		sh.mu.Unlock()
	}
}

func (sh *limitShard) sweep(now time.Time) {
	for k, b := range sh.buckets {
		if now.Sub(b.last) >= b.fill {
			delete(sh.buckets, k)
		}
	}
}

// evictOldest makes room in a full shard: of a few buckets (map order is
// random), the one unused longest goes.
func (sh *limitShard) evictOldest() {
	if len(sh.buckets) < maxBucketsPerShard {
		return
	}
	var oldest bucketKey
	var when time.Time
	n := 0
	for k, b := range sh.buckets {
		if n == 0 || b.last.Before(when) {
			oldest, when = k, b.last
		}
		if n++; n == 8 {
			break
		}
	}
	delete(sh.buckets, oldest)
}

// size is how many buckets the limiter holds.
func (l *limiter) size() int {
	n := 0
	for i := range l.shards {
		l.shards[i].mu.Lock()
		n += len(l.shards[i].buckets)
		l.shards[i].mu.Unlock()
	}
	return n
}
