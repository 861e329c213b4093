package query

// DropMinuteCache empties e's minute cache, for benchmarks of cold bar queries.
func DropMinuteCache(e *Engine) {
	e.minuteCache.mu.Lock()
	defer e.minuteCache.mu.Unlock()
	e.minuteCache.entries, e.minuteCache.size = nil, 0
	e.minuteCache.lru.Init()
}
