//go:build race

package bgp

// The race detector slows gobgp down several times; deadlines stretch.
const raceEnabled = true
