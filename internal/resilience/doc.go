// Package resilience decides how a K2 consumer behaves under load: how far
// behind it is allowed to fall before it changes what it does (Degradation),
// and which records, if any, it may drop to catch up (Shedder).
//
// The two are deliberately separate. Degradation only measures: it turns
// consumer lag and the process's memory into a Level, with hysteresis so the
// level does not flap. What a level means is the consumer's decision, with
// one rule fixed here: at CircuitBreak because of memory the consumer
// pauses (ShouldPause), it does not drop. The Shedder is the only place a record may be dropped,
// and it drops only the data types and symbol tiers its Policy names, from
// the levels the Policy names, counting every drop in
// k2_messages_shed_total. The default Policy is empty: K2 never drops data
// because of lag unless shedding is configured.
//
// This corrects the original (K2 v1) DegradationManager and LoadShedder,
// which measured whole-machine memory instead of the process's, and whose
// built-in tiers silently dropped every crypto trade (all tier 3) at
// AGGRESSIVE.
package resilience
