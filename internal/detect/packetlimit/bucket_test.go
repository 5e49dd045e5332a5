package packetlimit

import (
	"testing"
	"time"

	"padlock/internal/detect/detector"
)

// TestBucket: the reciprocal division agrees with s / cw for every window
// the configuration allows, at bucket edges and at today's Unix seconds.
func TestBucket(t *testing.T) {
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC).Unix()
	for w := 15; w <= 3600; w++ {
		c := Defaults()
		c.Window = detector.Duration(time.Duration(w) * time.Second)
		d := New(c, detector.Env{})
		for _, base := range []int64{0, now, 1 << 32, 4_102_444_800} { // 4_102_444_800: year 2100
			for k := int64(-2); k <= 2; k++ {
				s := max(0, base+k)
				if e := base - base%d.cw; e > 0 {
					s = max(0, e+k) // around a bucket edge
				}
				if got, want := d.bucket(s), uint32(s/d.cw); got != want {
					t.Fatalf("window %ds (cw %d): bucket(%d) = %d, want %d", w, d.cw, s, got, want)
				}
			}
		}
	}
}
