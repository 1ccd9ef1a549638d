//go:build race

package autograd

// raceEnabled: the race detector makes sync.Pool (purego's argument blocks
// included) drop items at random, so the allocation tests do not apply.
const raceEnabled = true
