package synth

import "github.com/k2-market-data/k2/internal/feed"

// Exchange is the synthetic market: a feed that generates trades and
// quotes (internal/live runs it) instead of connecting anywhere.
var Exchange = feed.Exchange{
	Name:      "synth",
	Code:      Code,
	Short:     "A synthetic market, deterministic from --seed, at --rate trades a second",
	Example:   "k2 feed synth --rate 10000 --seed 7",
	Synthetic: true,
}
