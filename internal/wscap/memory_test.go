package wscap

import (
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func gcPercent() int64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// settled waits until no settle check is pending (the last wave is over).
func settled(t *testing.T) {
	t.Helper()
	waitFor(t, "quiet", func() bool {
		settle.mu.Lock()
		defer settle.mu.Unlock()
		return !settle.scheduled
	})
}

func TestWaveOfOpensLowersGOGCUntilQuiet(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	settled(t)

	tunnelsChanged(true)
	if got := gcPercent(); got != int64(waveGOGC) {
		t.Fatalf("GOGC during a wave of opens = %d, want %d", got, waveGOGC)
	}
	tunnelsChanged(false)
	settled(t)
	if got := gcPercent(); got != 400 {
		t.Fatalf("GOGC after the wave = %d, want the server's 400 back", got)
	}

	// Closes alone do not lower it; a GOGC already lower is left alone.
	tunnelsChanged(false)
	if got := gcPercent(); got != 400 {
		t.Fatalf("GOGC during closes = %d, want 400", got)
	}
	settled(t)
	debug.SetGCPercent(50)
	tunnelsChanged(true)
	if got := gcPercent(); got != 50 {
		t.Fatalf("GOGC = %d, want the server's lower 50 untouched", got)
	}
	settled(t)
	if got := gcPercent(); got != 50 {
		t.Fatalf("GOGC after the wave = %d, want 50", got)
	}
}

func TestSteadyChurnDoesNotKeepGOGCLowered(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	defer func(d time.Duration) { waveMax = d }(waveMax)
	settled(t)
	waveMax = 50 * time.Millisecond

	tunnelsChanged(true)
	if got := gcPercent(); got != int64(waveGOGC) {
		t.Fatalf("GOGC = %d, want %d", got, waveGOGC)
	}
	for end := time.Now().Add(3 * waveMax); time.Now().Before(end); {
		tunnelsChanged(true) // never quiet
		time.Sleep(5 * time.Millisecond)
	}
	if got := gcPercent(); got != 400 {
		t.Fatalf("GOGC after waveMax of steady churn = %d, want 400 back", got)
	}
	settled(t)
	tunnelsChanged(true) // a new wave after a quiet moment
	if got := gcPercent(); got != int64(waveGOGC) {
		t.Fatalf("GOGC in a new wave = %d, want %d", got, waveGOGC)
	}
	settled(t)
}
