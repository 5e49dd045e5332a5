package detector

import (
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
