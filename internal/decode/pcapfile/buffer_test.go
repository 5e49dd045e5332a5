package pcapfile

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"

	"padlock/internal/flow"
)

// fillSink is a flow.Filler like analyze's batch feed: it lends the next
// element of its slice.
type fillSink struct{ recs []flow.Record }

func (s *fillSink) Record(r *flow.Record) { s.recs = append(s.recs, *r) }
func (s *fillSink) Slot() *flow.Record {
	if len(s.recs) == cap(s.recs) {
		s.recs = append(s.recs, flow.Record{})[:len(s.recs)]
	}
	r := &s.recs[:len(s.recs)+1][len(s.recs)]
	// a lent slot holds garbage; the reader must set every field
	for i := range r.Header {
		r.Header[i] = 0xee
	}
	r.Packets, r.Proto, r.VLAN = 77, 99, 12
	return r
}
func (s *fillSink) Commit() { s.recs = s.recs[:len(s.recs)+1] }

type copySink struct{ recs []flow.Record }

// ethRecords returns testdata/eth.pcap and its records, read whole.
func ethRecords(t *testing.T) ([]byte, *copySink) {
	t.Helper()
	src, err := os.ReadFile("testdata/eth.pcap")
	if err != nil {
		t.Fatal(err)
	}
	want := &copySink{}
	if _, err := runWith(t, bytes.NewReader(src), want); err != nil {
		t.Fatal(err)
	}
	return src, want
}

func (s *copySink) Record(r *flow.Record) { s.recs = append(s.recs, *r) }

func runWith(t *testing.T, src io.Reader, sink flow.Sink) (Stats, error) {
	t.Helper()
	rd, err := NewReader(src, "mem.pcap", Configuration{}, deps())
	if err != nil {
		t.Fatal(err)
	}
	return rd.Run(context.Background(), sink)
}

// bigCapture is a classic pcap of eth.pcap's packets repeated past the
// 1 MiB file buffer several times, with a 1.5 MiB packet (longer than the
// buffer) in the middle; it returns the file and the offset of that packet.
func bigCapture(t *testing.T) ([]byte, int) {
	t.Helper()
	src, err := os.ReadFile("testdata/eth.pcap")
	if err != nil {
		t.Fatal(err)
	}
	hdr := append([]byte(nil), src[:24]...)
	binary.LittleEndian.PutUint32(hdr[16:], 4<<20) // snap length
	body := src[24:]
	var b bytes.Buffer
	b.Write(hdr)
	for b.Len() < 3*readBuffer/2 {
		b.Write(body)
	}
	at := b.Len()
	// the first packet of eth.pcap again, padded to 1.5 MiB
	caplen := int(binary.LittleEndian.Uint32(body[8:]))
	big := make([]byte, 16+readBuffer*3/2)
	copy(big, body[:16+caplen])
	binary.LittleEndian.PutUint32(big[8:], uint32(len(big)-16))
	binary.LittleEndian.PutUint32(big[12:], uint32(len(big)-16))
	b.Write(big)
	for b.Len() < 4*readBuffer {
		b.Write(body)
	}
	return b.Bytes(), at
}

// Records that straddle the file buffer's refills, a record longer than
// the buffer, and a source that returns a byte or half a request at a time
// give the same records as one whole read, whether the reader fills
// records lent by the sink (flow.Filler, as analyze does) or hands over
// its own; a cut anywhere in the long record is a truncated record at its
// offset, after every record before it.
func TestClassicBufferBoundaries(t *testing.T) {
	data, bigAt := bigCapture(t)
	want := &copySink{}
	st, err := runWith(t, bytes.NewReader(data), want)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes != int64(len(data)) || int(st.Records) != len(want.recs) || len(want.recs) < 1000 {
		t.Fatalf("whole read: %d bytes of %d, %d records (stats %d)", st.Bytes, len(data), len(want.recs), st.Records)
	}
	var long *flow.Record
	for i := range want.recs {
		if want.recs[i].FrameLength == readBuffer*3/2 {
			long = &want.recs[i]
		}
	}
	if long == nil || long.HeaderLength != flow.MaxHeader {
		t.Fatalf("the packet longer than the buffer is missing or has no header: %+v", long)
	}
	for name, src := range map[string]func() io.Reader{
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) },
		"data+EOF": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) },
	} {
		for sname, sink := range map[string]interface {
			flow.Sink
			got() []flow.Record
		}{"copy": &copyGot{}, "filler": &fillGot{}} {
			if _, err := runWith(t, src(), sink); err != nil {
				t.Fatalf("%s, %s: %v", name, sname, err)
			}
			if d := firstDiff(want.recs, sink.got()); d != "" {
				t.Fatalf("%s, %s: %s", name, sname, d)
			}
		}
	}
	for _, cut := range []int{bigAt + 8, bigAt + 16, bigAt + readBuffer/2, bigAt + readBuffer + 100} {
		got := &fillGot{}
		_, err := runWith(t, bytes.NewReader(data[:cut]), got)
		if err == nil || !strings.Contains(err.Error(), "truncated packet record") {
			t.Fatalf("cut at %d: %v, want a truncated record", cut, err)
		}
		var oe *OffsetError
		if !errors.As(err, &oe) || oe.Offset != int64(bigAt) {
			t.Fatalf("cut at %d: %v, want offset %d", cut, err, bigAt)
		}
		n := 0
		for n < len(want.recs) && &want.recs[n] != long {
			n++
		}
		if d := firstDiff(want.recs[:n], got.recs); d != "" {
			t.Fatalf("cut at %d: %s", cut, d)
		}
	}
}

// firstDiff describes the first difference between two record lists, or
// returns "".
func firstDiff(want, got []flow.Record) string {
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			return fmt.Sprintf("record %d differs:\n%s", i, cmp.Diff(want[i], got[i], addrCmp))
		}
	}
	if len(want) != len(got) {
		return fmt.Sprintf("%d records, want %d", len(got), len(want))
	}
	return ""
}

type copyGot struct{ copySink }

func (s *copyGot) got() []flow.Record { return s.recs }

type fillGot struct{ fillSink }

func (s *fillGot) got() []flow.Record { return s.recs }

// A capture of flow exports read into lent slots: the export decoders'
// records go through Record while a slot is lent and not committed; the
// records are those of a sink that copies.
func TestFillerWithExports(t *testing.T) {
	for _, file := range []string{"testdata/sflow-export.pcap", "testdata/netflow-export.pcap", "testdata/eth.pcap"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		want, got := &copySink{}, &fillSink{}
		if _, err := runWith(t, bytes.NewReader(data), want); err != nil {
			t.Fatal(err)
		}
		if _, err := runWith(t, bytes.NewReader(data), got); err != nil {
			t.Fatal(err)
		}
		if len(want.recs) == 0 {
			t.Fatalf("%s: no records", file)
		}
		if d := firstDiff(want.recs, got.recs); d != "" {
			t.Fatalf("%s: filled records against copied ones: %s", file, d)
		}
	}
}

// recode rewrites a little-endian microsecond classic pcap in the given
// byte order, with nanosecond timestamps if nano.
func recode(t *testing.T, src []byte, order binary.ByteOrder, nano bool) []byte {
	t.Helper()
	le := binary.LittleEndian
	if le.Uint32(src) != 0xa1b2c3d4 {
		t.Fatal("not a little-endian microsecond pcap")
	}
	out := make([]byte, 24, len(src))
	magic := uint32(0xa1b2c3d4)
	if nano {
		magic = 0xa1b23c4d
	}
	order.PutUint32(out, magic)
	order.PutUint16(out[4:], le.Uint16(src[4:]))
	order.PutUint16(out[6:], le.Uint16(src[6:]))
	for _, at := range []int{8, 12, 16, 20} {
		order.PutUint32(out[at:], le.Uint32(src[at:]))
	}
	for b := src[24:]; len(b) > 0; {
		var h [16]byte
		frac := le.Uint32(b[4:])
		if nano {
			frac *= 1000
		}
		order.PutUint32(h[:], le.Uint32(b))
		order.PutUint32(h[4:], frac)
		order.PutUint32(h[8:], le.Uint32(b[8:]))
		order.PutUint32(h[12:], le.Uint32(b[12:]))
		n := 16 + int(le.Uint32(b[8:]))
		out = append(append(out, h[:]...), b[16:n]...)
		b = b[n:]
	}
	return out
}

// Big-endian files and nanosecond timestamps (both byte orders) give the
// records of the little-endian microsecond original.
func TestClassicByteOrderAndNanoseconds(t *testing.T) {
	src, want := ethRecords(t)
	for _, c := range []struct {
		name  string
		order binary.ByteOrder
		nano  bool
	}{{"big-endian", binary.BigEndian, false}, {"big-endian ns", binary.BigEndian, true}, {"little-endian ns", binary.LittleEndian, true}} {
		data := recode(t, src, c.order, c.nano)
		got := &fillSink{}
		if _, err := runWith(t, bytes.NewReader(data), got); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if d := firstDiff(want.recs, got.recs); d != "" {
			t.Fatalf("%s: %s", c.name, d)
		}
	}
}

// A gzip capture of several MiB cut short, or with a bad checksum: every
// record the decompressor can still deliver reaches the sink, and the
// error names the first record it cannot (the last bytes of a cut stream
// arrive together with the error and were lost once).
func TestGzipCutLosesNothing(t *testing.T) {
	src, err := os.ReadFile("testdata/eth.pcap")
	if err != nil {
		t.Fatal(err)
	}
	plain := append([]byte(nil), src...)
	for len(plain) < 3<<20 {
		plain = append(plain, src[24:]...)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(plain)
	zw.Close()
	gz := z.Bytes()
	badSum := append([]byte(nil), gz...)
	badSum[len(badSum)-8] ^= 0xff
	cases := map[string][]byte{"cut 50%": gz[:len(gz)/2], "cut 70%": gz[:len(gz)*7/10], "cut 90%": gz[:len(gz)*9/10], "bad checksum": badSum}
	for name, data := range cases {
		// what the decompressor delivers, and the records wholly in it
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		u, uerr := io.ReadAll(zr)
		if uerr == nil {
			t.Fatalf("%s: the damaged stream decompresses without error", name)
		}
		wantRecs, at := 0, 24
		for at+16 <= len(u) && at+16+int(binary.LittleEndian.Uint32(u[at+8:])) <= len(u) {
			at += 16 + int(binary.LittleEndian.Uint32(u[at+8:]))
			wantRecs++
		}
		got := &fillSink{}
		st, err := runWith(t, bytes.NewReader(data), got)
		var oe *OffsetError
		if !errors.As(err, &oe) || !oe.Compressed {
			t.Fatalf("%s: %v, want an offset error in the uncompressed stream", name, err)
		}
		if len(got.recs) != wantRecs || int(st.Packets) != wantRecs {
			t.Fatalf("%s: %d records (%d packets), the decompressor delivers %d whole ones", name, len(got.recs), st.Packets, wantRecs)
		}
		if at < len(u) && oe.Offset != int64(at) {
			t.Fatalf("%s: error at offset %d, the first incomplete record starts at %d: %v", name, oe.Offset, at, err)
		}
		if name == "bad checksum" && (wantRecs < 1000 || !strings.Contains(err.Error(), "checksum")) {
			t.Fatalf("%s: %d records, error %v", name, wantRecs, err)
		}
	}
}

// emptyReader returns its data, then zero bytes and no error forever.
type emptyReader struct{ r io.Reader }

func (e *emptyReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return 0, nil
	}
	return n, err
}

// A source that stops delivering without saying so ends the reading with
// an error instead of a hang, after the records it did deliver.
func TestClassicNoProgress(t *testing.T) {
	src, want := ethRecords(t)
	got := &fillSink{}
	_, err := runWith(t, &emptyReader{bytes.NewReader(src)}, got)
	if err == nil || !strings.Contains(err.Error(), io.ErrNoProgress.Error()) {
		t.Fatalf("%v, want io.ErrNoProgress's message", err)
	}
	if d := firstDiff(want.recs, got.recs); d != "" {
		t.Fatal(d)
	}
}
