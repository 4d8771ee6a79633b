//go:build !race

package successor

const raceEnabled = false
