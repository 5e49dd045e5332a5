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
