// Package ops is K2's operational plumbing shared by every component: the
// metrics registry a process exports, its build information, health checks,
// logging and the standard buckets. It sits below every other package and
// imports none of them.
package ops

import (
	"io"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Histogram buckets, in seconds: latency for in-memory and network paths,
// storage for object-store and catalog work that takes longer.
var (
	LatencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	StorageBuckets = []float64{.005, .01, .02, .035, .05, .075, .1, .15, .2, .3, .5, 1, 2, 5, 10, 30}
	RowBuckets     = prometheus.ExponentialBuckets(10, 4, 10) // 10 … 2.6M rows
)

// LevelRoutine is the level of lines that repeat as a process works (one
// per commit, per progress tick). They are info lines, and show as INFO,
// wherever logs are collected; a person at a terminal sees a status line
// instead (Quiet).
const LevelRoutine = slog.LevelInfo - 2

// LogOptions say where a process logs.
type LogOptions struct {
	Format string // json (for machines) or text
	Level  string // debug, info, warn or error
	// Quiet leaves routine lines out of the console (a terminal showing a
	// status line); File, when set, still receives them.
	Quiet bool
	// File receives the whole log as JSON lines, routine lines included.
	File io.Writer
}

// NewLogger builds the process logger writing to console (and File).
func NewLogger(console io.Writer, o LogOptions) *slog.Logger {
	level := ParseLevel(o.Level)
	lowest := level
	if level == slog.LevelInfo && !o.Quiet {
		lowest = LevelRoutine // info means routine lines too, unless a status line stands in for them
	}
	opts := &slog.HandlerOptions{Level: lowest, ReplaceAttr: nameRoutine}
	var h slog.Handler
	if strings.ToLower(o.Format) == "text" {
		h = slog.NewTextHandler(console, opts)
	} else {
		h = slog.NewJSONHandler(console, opts)
	}
	if o.File != nil {
		h = slog.NewMultiHandler(h, slog.NewJSONHandler(o.File, &slog.HandlerOptions{Level: min(level, LevelRoutine), ReplaceAttr: nameRoutine}))
	}
	return slog.New(h)
}

// nameRoutine writes LevelRoutine as INFO rather than INFO-2.
func nameRoutine(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.LevelKey {
		if l, ok := a.Value.Any().(slog.Level); ok && l == LevelRoutine {
			return slog.String(slog.LevelKey, slog.LevelInfo.String())
		}
	}
	return a
}

// ParseLevel reads debug, info, warn or error (info when unknown).
func ParseLevel(level string) slog.Level {
	switch strings.ToLower(level) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
