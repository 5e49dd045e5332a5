package evidence

import (
	"testing"
	"time"

	"padlock/internal/flow"
)

// FuzzDumperLine feeds arbitrary header bytes to the dump renderer: it must
// never panic and always produce one line.
func FuzzDumperLine(f *testing.F) {
	for _, r := range samplePackets(&testing.T{}) {
		f.Add(r.HeaderBytes(), r.FrameLength)
	}
	f.Fuzz(func(t *testing.T, b []byte, frameLen uint32) {
		var r flow.Record
		r.Start = time.Unix(0, 0).UTC()
		r.SetHeader(b)
		r.FrameLength = frameLen
		d := NewDumper()
		for i := 0; i < 2; i++ { // twice: the second pass uses TCP state
			l := d.Line(&r)
			for _, c := range l {
				if c == '\n' {
					t.Fatalf("line contains a newline: %q", l)
				}
			}
		}
	})
}
