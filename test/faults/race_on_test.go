//go:build race

package faults

// raceEnabled: this binary is built with -race.
const raceEnabled = true
