package detect_test

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"padlock/internal/detect"
	"padlock/internal/flow"
)

// TestRecordsMatchesRecord: the batch path (Records, which ingest and
// analyze use) reports exactly the findings, in the same order, that
// calling Record on each record does — also when hosts expire and their
// indexes are reused inside a batch, and for IPv6, IPv4-mapped and
// unusable records.
func TestRecordsMatchesRecord(t *testing.T) {
	recs := mix(300_000, 40_000, 600) // enough hosts for Records to warm
	// the shortest host expiry the windows allow: over the mix's 600 s
	// hosts are swept and their indexes reused while batches are in flight
	conf := detect.Defaults()
	conf.HostExpiry = detect.Duration(300 * time.Second)
	for i := range recs {
		switch i % 97 {
		case 3: // IPv4-mapped IPv6 ends
			recs[i].SrcAddr = netip.AddrFrom16(recs[i].SrcAddr.As16())
			recs[i].DstAddr = netip.AddrFrom16(recs[i].DstAddr.As16())
		case 5: // no destination: skipped
			recs[i].DstAddr = netip.Addr{}
		case 7: // IPv6, both ends internal
			recs[i].SrcAddr, recs[i].DstAddr = in6(i%50), in6(i%50+1)
		}
	}
	run := func(batch bool) ([]detect.Finding, detect.Stats) {
		var got []detect.Finding
		e, err := detect.New(conf, detect.Dependencies{Networks: detect.NewPrefixes(bigCustomers),
			OnFinding: func(f detect.Finding) { got = append(got, f) }})
		if err != nil {
			t.Fatal(err)
		}
		if batch {
			for i := 0; i < len(recs); i += 509 { // batches of odd size
				e.Records(recs[i:min(i+509, len(recs))])
			}
		} else {
			for i := range recs {
				e.Record(&recs[i])
			}
		}
		e.Flush()
		return got, e.Stats()
	}
	one, oneStats := run(false)
	many, manyStats := run(true)
	if len(one) < 3 {
		t.Fatalf("the mix should give findings, got %d", len(one))
	}
	if oneStats != manyStats {
		t.Errorf("stats differ: Record %+v, Records %+v", oneStats, manyStats)
	}
	if len(one) != len(many) {
		t.Fatalf("Record gave %d findings, Records %d", len(one), len(many))
	}
	for i := range one {
		if !reflect.DeepEqual(one[i], many[i]) {
			t.Fatalf("finding %d differs:\nRecord:  %s %s %s\nRecords: %s %s %s", i,
				one[i].Kind, one[i].Rule, one[i].InternalIP, many[i].Kind, many[i].Rule, many[i].InternalIP)
		}
	}
}

// TestRecordsAcrossASweep: a group of records whose first record moves
// event time over an expiry sweep, which drops an idle host whose index the
// group's warming pass had already looked up; the next record creates a
// host (and gets the freed index), the one after is the dropped host
// again. The batch path must create that host anew, as Record does, not
// count it on the index it had before the sweep.
func TestRecordsAcrossASweep(t *testing.T) {
	const hosts = 5000 // more than the engine needs to warm
	var before, group capture
	for i := range hosts {
		before.pkt(0, bigIn(i), 40000, ext(300), 53, flow.ProtoUDP, 0, 80)
		if i > 0 { // all but host 0 stay active
			before.pkt(500*time.Second, bigIn(i), 40000, ext(300), 53, flow.ProtoUDP, 0, 80)
		}
	}
	group.pkt(760*time.Second, bigIn(1), 40000, ext(300), 53, flow.ProtoUDP, 0, 80)    // sweeps host 0 out
	group.pkt(760*time.Second, bigIn(9000), 40000, ext(300), 53, flow.ProtoUDP, 0, 80) // new host: host 0's index
	group.pkt(760*time.Second, bigIn(0), 40000, ext(300), 53, flow.ProtoUDP, 0, 80)    // host 0 is back
	run := func(batch bool) detect.Stats {
		e, err := detect.New(detect.Defaults(), detect.Dependencies{Networks: detect.NewPrefixes(bigCustomers),
			OnFinding: func(detect.Finding) {}})
		if err != nil {
			t.Fatal(err)
		}
		e.Records(before.sorted())
		if batch {
			e.Records(group.recs)
		} else {
			for i := range group.recs {
				e.Record(&group.recs[i])
			}
		}
		return e.Stats()
	}
	one, many := run(false), run(true)
	if one.Hosts != hosts+1 {
		t.Fatalf("Record: %d hosts with state, want %d (host 0 swept out and back, one new)", one.Hosts, hosts+1)
	}
	if one != many {
		t.Errorf("stats differ: Record %+v, Records %+v", one, many)
	}
}
