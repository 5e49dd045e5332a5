package detect_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"padlock/internal/detect"
	"padlock/internal/detect/netscan"
	"padlock/internal/flow"
)

// A UDP service on a high port (a game server's 27015) that only replies,
// seen through sFlow: the sampled requests and the sampled replies are of
// different clients (random addresses and ports), so no reply finds its
// request, and thousands of replies read as contacts on thousands of
// ports. The requests coming in to 27015 as often as the replies go out
// make them replies. A scanner of memcached (11211) from one high source
// port, whose targets answer one time in twenty, stays a scanner.
func TestSampledHighPortServiceIsNoScanner(t *testing.T) {
	for _, rate := range []uint32{1000, 100} {
		var c capture
		rng := rand.New(rand.NewPCG(1, uint64(rate)))
		for s := range 400 {
			for k := range 20 { // samples per second each way
				at := time.Duration(s)*time.Second + time.Duration(k)*time.Second/20
				c.sflow(at, rate, ext(256+rng.IntN(130000)), uint16(1024+rng.IntN(64000)), in(90), 27015, flow.ProtoUDP, 0, 60)
				c.sflow(at+ms, rate, in(90), 27015, ext(256+rng.IntN(130000)), uint16(1024+rng.IntN(64000)), flow.ProtoUDP, 0, 200)
			}
		}
		for i := range 300 * 5 { // 5 sampled probes a second, one in twenty answered
			at := time.Duration(i) * 200 * ms
			dst := ext(256 + rng.IntN(130000))
			c.sflow(at, rate, in(91), 41000, dst, 11211, flow.ProtoUDP, 0, 60)
			if i%20 == 0 {
				c.sflow(at+ms, rate, ext(256+rng.IntN(130000)), 11211, in(91), 41000, flow.ProtoUDP, 0, 1400)
			}
		}
		got := run(t, detect.Defaults(), nil, c.sorted())
		if r := rulesOf(got, 90); len(r) != 0 {
			t.Errorf("1:%d: a UDP service on 27015 that only replies reported as %v", rate, r)
		}
		if r := rulesOf(got, 91); !r[netscan.RuleHorizontal] {
			t.Errorf("1:%d: memcached scan from port 41000 not reported: %v", rate, verdicts(got))
		}
	}
}
