//go:build race

package timeline

// raceEnabled reports whether the race detector is on.
const raceEnabled = true
