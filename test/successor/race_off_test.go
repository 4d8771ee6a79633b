//go:build !race

package successor

// raceEnabled: this binary is built with -race.
const raceEnabled = false
