package detect_test

import (
	"testing"
	"time"

	"padlock/internal/detect"
	"padlock/internal/flow"
)

// A spam bot whose SMTP sessions are tarpitted by the receiving mail
// servers: NetFlow exports each session as one record of 45 s, the first
// starting at t0. The finding's first_seen and the first mail server's
// line must say when the bot began (the records' start), not when the
// exporter closed the first record 45 s later.
func TestSpamLongFlowRecordsDatedAtTheirStart(t *testing.T) {
	var c capture
	for i := range 120 {
		from := time.Duration(i) * 2 * time.Second
		c.netflow(from, from+45*time.Second, in(85), 40000+uint16(i), ext(7000+i), 25, flow.ProtoTCP,
			syn|ack|flow.TCPPsh|flow.TCPFin, 12, 1500)
	}
	got := run(t, detect.Defaults(), nil, c.sorted())
	if len(got) != 1 || got[0].Rule != "spam.smtp_fanout" {
		t.Fatalf("findings %v, want one spam.smtp_fanout", verdicts(got))
	}
	f := got[0]
	if !f.FirstSeen.Equal(t0) {
		t.Errorf("first_seen %s after the first session began, want 0s", f.FirstSeen.Sub(t0))
	}
	if len(f.Probes) == 0 || !f.Probes[0].Time.Equal(t0) || f.Probes[0].Dst != ext(7000) {
		t.Errorf("first mail server line %+v, want %s at 0s", f.Probes[0], ext(7000))
	}
}

// With min_samples above min_destinations (documented: "the verdict also
// needs repeated contacts"), a bot that delivers to the same 100 mail
// servers over and over — three rounds, 300 connection attempts to 100
// mail servers within two minutes — proves spam at its 250th attempt. The
// verdict was only looked at when a new mail server appeared, so repeated
// contacts never completed it.
func TestSpamMinSamplesMetByRepeatedContacts(t *testing.T) {
	var c capture
	for round := range 3 {
		for i := range 100 {
			at := time.Duration(round)*time.Minute + time.Duration(i)*300*ms
			c.pkt(at, in(86), 40000+uint16(round*100+i), ext(7000+i), 25, flow.ProtoTCP, syn, 60)
		}
	}
	conf := detect.Defaults()
	conf.Spam.MinSamples = 250
	got := run(t, conf, nil, c.sorted())
	if len(got) != 1 || got[0].Rule != "spam.smtp_fanout" {
		t.Fatalf("findings %v, want one spam.smtp_fanout", verdicts(got))
	}
	if f := got[0]; f.Measured != 100 || f.Samples < 250 || f.Samples > 251 {
		t.Errorf("measured %v mail servers, %d samples; want 100 and 250", f.Measured, f.Samples)
	}
}

// A bot mailing the same 300 mail servers round robin, each one again
// every 4 minutes, for 40 minutes: after the first round no mail server
// is ever new again. It is reported at once and again after each rearm
// period (15 minutes) while it goes on — a warned customer's recurrence
// is what escalates to a lock — not once and never again.
func TestSpamReportedAgainWhileCyclingTheSameMailServers(t *testing.T) {
	var c capture
	const mx = 300
	period := 240 * time.Second / mx
	for i := 0; i < int(40*time.Minute/period); i++ {
		c.pkt(time.Duration(i)*period, in(87), 30000+uint16(i%30000), ext(7000+i%mx), 25, flow.ProtoTCP, syn, 60)
	}
	var got []detect.Finding
	for _, f := range run(t, detect.Defaults(), nil, c.sorted()) {
		if f.Kind == "spam" {
			got = append(got, f)
		}
	}
	if len(got) != 3 {
		t.Fatalf("%d findings in 40 minutes, want 3 (rearm 15 minutes): %v", len(got), verdicts(got))
	}
	for i, f := range got {
		if f.Rule != "spam.smtp_fanout" || f.Measured < 100 {
			t.Errorf("finding %d: %s measured %v", i, f.Rule, f.Measured)
		}
	}
	if d := got[1].LastSeen.Sub(got[0].LastSeen); d < 15*time.Minute || d > 15*time.Minute+10*time.Second {
		t.Errorf("second finding %s after the first, want 15m", d)
	}
}
