//go:build race

package successor

// raceEnabled: the race detector slows every call several times over, past the 8 s
// that an Event Notifications request may take.
const raceEnabled = true
