package detector

import (
	"fmt"
	"testing"
	"time"

	"padlock/internal/flow"
)

func TestSamplesPreferHeaders(t *testing.T) {
	s := NewSamples(3)
	t0 := time.Unix(1700000000, 0)
	for i := 0; i < 5; i++ { // flow records without headers fill the buffer
		s.Add(&flow.Record{Start: t0.Add(time.Duration(i) * time.Second), Packets: 1})
	}
	withHeader := flow.Record{Start: t0.Add(10 * time.Second)}
	withHeader.SetHeader([]byte{0x45, 0, 0, 20})
	s.Add(&withHeader)
	s.Add(&withHeader)
	got, omitted := s.Copy()
	headers := 0
	for _, r := range got {
		if r.HeaderLength > 0 {
			headers++
		}
	}
	if len(got) != 3 || headers != 2 || omitted != 4 {
		t.Errorf("kept %d (%d with headers), omitted %d; want 3 (2), 4", len(got), headers, omitted)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Start.Before(got[i-1].Start) {
			t.Errorf("samples not sorted by time")
		}
	}
}

func TestSamplesAddDoesNotAllocate(t *testing.T) {
	s := NewSamples(4)
	r := flow.Record{Packets: 1}
	r.SetHeader([]byte{1, 2, 3})
	if n := testing.AllocsPerRun(1000, func() { s.Add(&r) }); n != 0 {
		t.Errorf("Add allocates %v times", n)
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("5m")); err != nil || d.D() != 5*time.Minute || d.Seconds() != 300 {
		t.Errorf("5m: %v %v", d, err)
	}
	if err := d.UnmarshalText([]byte("300")); err == nil {
		t.Error("a duration without unit was accepted")
	}
	if b, _ := Duration(300 * time.Second).MarshalText(); string(b) != "5m0s" {
		t.Errorf("marshal: %s", b)
	}
}

// TestSamplesWithin: a full buffer with a window gives way, oldest first,
// to records that ended more than the window after the kept ones; without
// a window it keeps its first records.
func TestSamplesWithin(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	at := func(s int) *flow.Record {
		ts := t0.Add(time.Duration(s) * time.Second)
		return &flow.Record{Start: ts, End: ts, Packets: 1}
	}
	for _, tt := range []struct {
		window int64
		want   []int
	}{{0, []int{0, 1, 2, 3}}, {int64(10 * time.Second), []int{3, 12, 13, 14}}} {
		s := NewSamples(4).Within(tt.window)
		for _, sec := range []int{0, 1, 2, 3, 5, 12, 13, 14} {
			s.Add(at(sec))
		}
		recs, omitted := s.Copy()
		var got []int
		for _, r := range recs {
			got = append(got, int(r.End.Sub(t0)/time.Second))
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) || omitted != 4 {
			t.Errorf("window %v: kept %v (%d omitted), want %v (4 omitted)", time.Duration(tt.window), got, omitted, tt.want)
		}
	}
}
