package spam_test

import (
	"testing"
	"time"

	"padlock/internal/detect/detector/detectortest"
	"padlock/internal/detect/spam"
	"padlock/internal/flow"
)

// TestSecondEpisode: a host spams (seen at 1:1000: sampled SYNs), stops, and spams again
// half an hour later (seen unsampled). The second finding's traffic dump
// holds packets of its own window only, and its sampling rate is that of
// its own records — whether the host mailed its smarthost in between (its
// table stays) or was silent (its table is dropped).
func TestSecondEpisode(t *testing.T) {
	for _, between := range []bool{false, true} {
		name := "silent in between"
		if between {
			name = "smarthost mail in between"
		}
		t.Run(name, func(t *testing.T) {
			r := detectortest.NewRearming(15 * time.Minute)
			rec := r.Recorder
			d := spam.New(spam.Defaults(), r.Env())
			feed := func(x flow.Record) {
				x.End = x.Start
				x.SrcAddr, x.DstPort, x.Proto, x.Bytes = spammer, 25, flow.ProtoTCP, 60
				r.Record(d, &x)
			}
			// episode 1: 150 mail servers in 150 s, sampled SYNs
			for i := 0; i < 150; i++ {
				feed(flow.Record{Start: t0.Add(time.Duration(i) * time.Second), Format: flow.FormatSFlow5, SamplingRate: 1000,
					SrcPort: uint16(40000 + i), DstAddr: mxAddr(i), TCPFlags: flow.TCPSyn, Packets: 1000})
			}
			if between { // one mail a minute to the smarthost
				for m := 3; m < 30; m++ {
					feed(flow.Record{Start: t0.Add(time.Duration(m) * time.Minute), Format: flow.FormatPcap, SamplingRate: 1,
						SrcPort: uint16(50000 + m), DstAddr: mxAddr(5000), TCPFlags: flow.TCPSyn, Packets: 1})
				}
			}
			// episode 2, half an hour later: 150 mail servers in 75 s, unsampled SYNs
			at2 := t0.Add(30 * time.Minute)
			for i := 0; i < 150; i++ {
				feed(flow.Record{Start: at2.Add(time.Duration(i) * 500 * time.Millisecond), Format: flow.FormatPcap, SamplingRate: 1,
					SrcPort: uint16(41000 + i), DstAddr: mxAddr(1000 + i), TCPFlags: flow.TCPSyn, Packets: 1})
			}
			if len(rec.Findings) != 2 {
				t.Fatalf("%d findings, want 2", len(rec.Findings))
			}
			if f := rec.Findings[0]; f.SamplingRate != 1000 {
				t.Errorf("first finding: sampling rate %d, want 1000", f.SamplingRate)
			}
			f := rec.Findings[1]
			if f.SamplingRate != 1 {
				t.Errorf("second finding: sampling rate %d, want 1 (its records are unsampled)", f.SamplingRate)
			}
			if f.Measured != 100 || f.LastSeen.Before(at2) {
				t.Errorf("second finding: measured %v, last seen %s", f.Measured, f.LastSeen)
			}
			if len(f.Packets) != 32 {
				t.Errorf("second finding: %d packets in the dump, want 32", len(f.Packets))
			}
			from, outside := f.LastSeen.Add(-300*time.Second), 0
			for _, p := range f.Packets {
				if !p.End.After(from) || p.End.After(f.LastSeen.Add(time.Second)) {
					if outside++; outside == 1 {
						t.Errorf("second finding (window %s to %s) carries a packet of %s (%s)", from.Format(time.TimeOnly),
							f.LastSeen.Format(time.TimeOnly), p.End.Format(time.TimeOnly), p.Format)
					}
				}
			}
			if outside > 0 {
				t.Errorf("second finding: %d of %d packets outside its window", outside, len(f.Packets))
			}
		})
	}
}
