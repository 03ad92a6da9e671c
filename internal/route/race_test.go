//go:build race

package route

// The race detector makes sync.Pool drop items at random, so regexp
// matching allocates under -race; allocation checks that go through a
// regexp are skipped there.
const raceEnabled = true
