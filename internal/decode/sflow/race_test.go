//go:build race

package sflow

// raceEnabled: sync.Pool drops items on purpose under the race detector.
const raceEnabled = true
