package pcapfile

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"padlock/internal/decode"
	"padlock/internal/flow"
)

// FuzzReader feeds arbitrary files to the reader, seeded with every real
// capture under testdata (pcap, pcapng, gzip, truncated, exports). A file
// either reads to its end or fails with an OffsetError that wraps a decode
// sentinel (or a gzip error); it never panics and never hangs.
func FuzzReader(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.pcap*")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil && len(b) < 64<<10 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rd, err := NewReader(bytes.NewReader(data), "fuzz.pcap", Configuration{}, deps())
		if err != nil {
			var oe *OffsetError
			if !errors.As(err, &oe) {
				t.Fatalf("open: %v is no OffsetError", err)
			}
			return
		}
		n := 0
		st, err := rd.Run(context.Background(), flow.SinkFunc(func(r *flow.Record) {
			n++
			if r.SamplingRate == 0 || int(r.HeaderLength) > flow.MaxHeader {
				t.Fatalf("bad record %+v", r)
			}
		}))
		if st.Records != uint64(n) {
			t.Fatalf("stats say %d records, sink got %d", st.Records, n)
		}
		if err != nil {
			var oe *OffsetError
			if !errors.As(err, &oe) || oe.Offset < 0 || oe.Offset > int64(len(data))*1100 {
				t.Fatalf("run: %v", err)
			}
			if decode.Cause(err) == "other" {
				t.Fatalf("run: %v wraps no sentinel", err)
			}
		}
	})
}
