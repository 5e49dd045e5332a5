// Package pcapfile reads pcap and pcapng capture files, gzip-compressed or
// not (recognised by magic number, never by name), and turns them into
// flow.Records. Each packet is examined on its own: a UDP datagram to or
// from a flow-export port whose payload looks like NetFlow v5/v9, IPFIX or
// sFlow v5 is handed to the injected export decoder; every other packet
// becomes one record (Format pcap, sampling rate 1, header bytes kept).
//
// It owns file framing, the export/raw-packet decision and the per-file
// statistics. Classic pcap records are parsed here, in place in the file
// buffer; pcapng by gopacket's pcapgo; packet headers by package packet;
// export decoding by the decoders in Dependencies. It must not import the collector or any export decoder.
package pcapfile

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/pcapgo"

	"padlock/internal/decode"
	"padlock/internal/decode/packet"
	"padlock/internal/flow"
)

// DefaultExportPorts are the UDP ports checked for flow exports: NetFlow
// (2055, 9995, 9996), IPFIX (4739) and sFlow (6343).
var DefaultExportPorts = []uint16{2055, 9995, 9996, 4739, 6343}

// Configuration of a Reader.
type Configuration struct {
	// ExportPorts are checked in addition to DefaultExportPorts.
	ExportPorts []uint16
	// Progress, if set, is called now and then with the bytes of the file
	// read so far and the file size (compressed bytes for gzip files), and
	// once at the end.
	Progress func(read, total int64)
}

// Dependencies are the export decoders. A nil decoder means that format's
// datagrams are treated as ordinary packets.
type Dependencies struct {
	NetFlow decode.Decoder // NetFlow v5, v9 and IPFIX
	SFlow   decode.Decoder // sFlow v5
}

// Stats describe one Run.
type Stats struct {
	Packets         uint64                 // packets read from the file
	ExportDatagrams uint64                 // packets decoded as flow exports
	Records         uint64                 // records handed to the sink
	ByFormat        map[flow.Format]uint64 // records per format
	ByExporter      map[netip.Addr]uint64  // export records per exporter (UDP source address)
	// Errors counts problems that did not stop the file, by cause:
	// decode.Cause of export decode errors ("truncated", "no_template",
	// ...), and "packet_truncated"/"packet_malformed" for packets whose
	// headers could not be parsed down to L4 (they still became records).
	Errors map[string]uint64
	Bytes  int64 // bytes of the file read
}

// OffsetError is a corrupt or truncated capture file: the file, the byte
// offset of the record that could not be read, and why. Offsets count
// uncompressed bytes; for gzip files the message says so.
type OffsetError struct {
	File       string
	Offset     int64
	Compressed bool
	Err        error
}

func (e *OffsetError) Error() string {
	if e.Compressed {
		return fmt.Sprintf("%s: offset %d (uncompressed): %v", e.File, e.Offset, e.Err)
	}
	return fmt.Sprintf("%s: offset %d: %v", e.File, e.Offset, e.Err)
}

func (e *OffsetError) Unwrap() error { return e.Err }

// causeError is a message that unwraps to a decode sentinel without
// repeating it.
type causeError struct {
	msg   string
	cause error
}

func (e *causeError) Error() string { return e.msg }
func (e *causeError) Unwrap() error { return e.cause }

var (
	errTruncRecord = &causeError{"truncated packet record", decode.ErrTruncated}
	errTruncBlock  = &causeError{"truncated pcapng block", decode.ErrTruncated}
	errTruncHeader = &causeError{"truncated file header", decode.ErrTruncated}
	errBlockLen    = &causeError{"bad pcapng block length", decode.ErrMalformed}
	errByteOrder   = &causeError{"bad pcapng byte-order magic", decode.ErrMalformed}
	errNotCapture  = &causeError{"not a pcap or pcapng file", decode.ErrMalformed}
)

// Reader reads one capture file. It is not safe for concurrent use.
type Reader struct {
	path  string
	conf  Configuration
	deps  Dependencies
	file  *os.File
	size  int64
	count *countingReader
	fr    *framer
	gz    bool
	ports [65536 / 64]uint64 // bitset of export ports

	// br buffers the file (or its decompression) for sniffing and for
	// pcapng, which pcapgo reads through the framer; classic pcap is read
	// by readClassic into buf (see read)
	br       *bufio.Reader
	rerr     error // classic: the error that ended reading, kept until the bytes before it are used
	classic  classicHeader
	buf      []byte // classic: file buffer, records parsed in place
	pos, end int    // classic: unread bytes of buf
	big      []byte // records longer than buf
	ng       *pcapgo.NgReader
	// link types of pcapng interfaces, by interface index
	links []uint32

	sink  countSink
	stats Stats
}

// Open opens path and reads its file header. It does not read packets.
// Errors name the file by path as given.
func Open(path string, conf Configuration, deps Dependencies) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s: is a directory, not a capture file", path)
	}
	rd, err := newReader(f, path, conf, deps)
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi, err := f.Stat(); err == nil {
		rd.size = fi.Size()
	}
	rd.file = f
	return rd, nil
}

// NewReader reads a capture from r (used by Open, and by tests and fuzzing
// on in-memory data); name appears in errors.
func NewReader(r io.Reader, name string, conf Configuration, deps Dependencies) (*Reader, error) {
	return newReader(r, name, conf, deps)
}

func newReader(src io.Reader, name string, conf Configuration, deps Dependencies) (*Reader, error) {
	rd := &Reader{path: name, conf: conf, deps: deps}
	for _, p := range DefaultExportPorts {
		rd.ports[p/64] |= 1 << (p % 64)
	}
	for _, p := range conf.ExportPorts {
		rd.ports[p/64] |= 1 << (p % 64)
	}
	rd.count = &countingReader{r: src}
	br := bufio.NewReaderSize(rd.count, readBuffer)
	magic, err := br.Peek(2)
	if err != nil {
		return nil, &OffsetError{File: name, Err: errTruncHeader}
	}
	if magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, &OffsetError{File: name, Err: &causeError{"gzip: " + err.Error(), decode.ErrMalformed}}
		}
		rd.gz = true
		br = bufio.NewReaderSize(zr, readBuffer)
	}
	magic, err = br.Peek(4)
	if err != nil {
		return nil, &OffsetError{File: name, Compressed: rd.gz, Err: errTruncHeader}
	}
	rd.fr = &framer{src: br}
	switch binary.LittleEndian.Uint32(magic) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		rd.fr.order = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		rd.fr.order = binary.BigEndian
	case 0x0a0d0d0a:
		rd.fr.ng = true
	default:
		return nil, &OffsetError{File: name, Compressed: rd.gz, Err: errNotCapture}
	}
	if rd.fr.ng {
		rd.ng, err = pcapgo.NewNgReader(rd.fr, pcapgo.NgReaderOptions{})
	} else {
		rd.br = br
		err = rd.readClassicHeader()
	}
	if err != nil {
		return nil, rd.fileError(err)
	}
	return rd, nil
}

// readBuffer is the size of bufio's buffer and, with classicSlack, of the
// classic file buffer: classic pcap records up to that size are parsed in
// place, without a copy.
const readBuffer = 1 << 20

// classicSlack is what the classic file buffer has beyond readBuffer, so
// that with a record of up to libpcap's largest snap length still unread
// at its front, the space behind is as long as bufio's buffer and bufio
// reads into it directly instead of through its own buffer.
const classicSlack = 16 + 262144

// classicHeader is what a classic pcap file header says.
type classicHeader struct {
	big     bool // big-endian (records are read without the ByteOrder interface)
	nano    bool // nanosecond timestamps (magic a1b23c4d)
	snaplen uint32
	link    uint32
	maxCap  uint32 // longest record taken: the snap length, at least libpcap's 262144
}

func (rd *Reader) readClassicHeader() error {
	b, err := rd.br.Peek(24)
	if len(b) < 24 {
		if err == nil || err == io.EOF {
			err = errTruncHeader
		}
		return err
	}
	h := &rd.classic
	order := rd.fr.order
	h.big = order == binary.BigEndian
	h.nano = order.Uint32(b) == 0xa1b23c4d
	if v := order.Uint16(b[4:]); v != 2 {
		return &causeError{fmt.Sprintf("unknown pcap major version %d", v), decode.ErrMalformed}
	}
	if v := order.Uint16(b[6:]); v != 4 {
		return &causeError{fmt.Sprintf("unknown pcap minor version %d", v), decode.ErrMalformed}
	}
	h.snaplen = order.Uint32(b[16:])
	// the link type is the low 16 bits; the top bits may say how many FCS
	// bytes frames carry (libpcap's LT_LINKTYPE)
	h.link = order.Uint32(b[20:]) & 0xffff
	h.maxCap = max(h.snaplen, 262144)
	rd.br.Discard(24)
	rd.fr.off = 24
	rd.buf = make([]byte, readBuffer+classicSlack)
	return nil
}

// readClassic reads the next classic pcap record: its data (valid until
// the next call), time and original length. io.EOF at a clean end of file.
func (rd *Reader) readClassic() (data []byte, ts time.Time, length int, err error) {
	h, f := &rd.classic, rd.fr
	f.blockStart = f.off
	if rd.end-rd.pos < 16 {
		if err := rd.fill(16); err != nil {
			return nil, ts, 0, err
		}
	}
	b := rd.buf[rd.pos : rd.pos+16 : rd.pos+16]
	var sec, frac, caplen, olen uint32
	if h.big {
		sec, frac = binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
		caplen, olen = binary.BigEndian.Uint32(b[8:]), binary.BigEndian.Uint32(b[12:])
	} else {
		sec, frac = binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
		caplen, olen = binary.LittleEndian.Uint32(b[8:]), binary.LittleEndian.Uint32(b[12:])
	}
	if caplen > h.maxCap {
		return nil, ts, 0, &causeError{fmt.Sprintf("capture length exceeds snap length: %d > %d", caplen, h.snaplen), decode.ErrMalformed}
	}
	if caplen > olen {
		return nil, ts, 0, &causeError{fmt.Sprintf("capture length exceeds original packet length: %d > %d", caplen, olen), decode.ErrMalformed}
	}
	ns := int64(frac)
	if !h.nano {
		ns *= 1000
	}
	ts = time.Unix(int64(sec), ns).UTC()
	n := 16 + int(caplen)
	if n <= len(rd.buf) {
		if rd.end-rd.pos < n {
			if err := rd.fill(n); err != nil {
				return nil, ts, 0, err
			}
		}
		data = rd.buf[rd.pos+16 : rd.pos+n : rd.pos+n]
		rd.pos += n // data stays valid until the next fill
	} else {
		// longer than the buffer: what the buffer holds, then the rest
		// read in pieces, growing the slice only as bytes arrive (the
		// length comes from the file)
		rd.big = append(rd.big[:0], rd.buf[rd.pos+16:rd.end]...)
		rd.pos = rd.end
		for left := int(caplen) - len(rd.big); left > 0; {
			k := min(left, readBuffer)
			at := len(rd.big)
			rd.big = append(rd.big, make([]byte, k)...)
			if _, err := io.ReadFull(readerFunc(rd.read), rd.big[at:]); err != nil {
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					err = errTruncRecord
				}
				return nil, ts, 0, err
			}
			left -= k
		}
		data = rd.big
	}
	f.off += int64(n)
	return data, ts, int(olen), nil
}

// fill moves the unread bytes of the classic file buffer to its front and
// reads until it holds at least need bytes. Bytes that arrive together
// with an error are kept (a cut gzip stream hands over its last bytes
// with io.ErrUnexpectedEOF); the error is returned only once the bytes do
// not suffice: io.EOF when the file ended cleanly before them,
// errTruncRecord when it ended inside a record, any other error as it is.
func (rd *Reader) fill(need int) error {
	rd.end = copy(rd.buf, rd.buf[rd.pos:rd.end])
	rd.pos = 0
	for rd.end < need && rd.rerr == nil {
		k, _ := rd.read(rd.buf[rd.end:])
		rd.end += k
	}
	switch {
	case rd.end >= need:
		return nil
	case rd.rerr != io.EOF:
		return rd.rerr
	case rd.end == 0:
		return io.EOF
	}
	return errTruncRecord
}

// read reads the classic capture after its header through br, which
// first hands over what it buffered while sniffing the file and then,
// p being at least as long as its buffer (see classicSlack), reads
// straight into p: every byte is copied once, into rd.buf. The first
// error sticks (rd.rerr); 100 empty reads are io.ErrNoProgress, as in
// bufio.
func (rd *Reader) read(p []byte) (int, error) {
	if rd.rerr != nil {
		return 0, rd.rerr
	}
	for range 100 {
		n, err := rd.br.Read(p)
		if err != nil {
			rd.rerr = err
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
	rd.rerr = io.ErrNoProgress
	return 0, rd.rerr
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// Close closes the file.
func (rd *Reader) Close() error {
	if rd.file == nil {
		return nil
	}
	return rd.file.Close()
}

// fileError turns a read error into an OffsetError at the current record.
func (rd *Reader) fileError(err error) error {
	if rd.fr.err != nil {
		err = rd.fr.err
	} else if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = errTruncRecord
	} else if !errors.Is(err, decode.ErrMalformed) && !errors.Is(err, decode.ErrTruncated) {
		err = &causeError{err.Error(), decode.ErrMalformed}
	}
	return &OffsetError{File: rd.path, Offset: rd.fr.blockStart, Compressed: rd.gz, Err: err}
}

// Run reads every packet and hands the records to sink. It stops at the
// end of the file, when ctx is done, or at the first corrupt or truncated
// record, returning an *OffsetError after having delivered every record
// before it. The Stats are valid in every case.
func (rd *Reader) Run(ctx context.Context, sink flow.Sink) (Stats, error) {
	rd.stats = Stats{ByFormat: map[flow.Format]uint64{}, ByExporter: map[netip.Addr]uint64{}, Errors: map[string]uint64{}}
	rd.sink = countSink{stats: &rd.stats, next: sink}
	rd.sink.fill, _ = sink.(flow.Filler)
	var err error
	for {
		if rd.stats.Packets%1024 == 0 {
			if cerr := ctx.Err(); cerr != nil {
				err = cerr
				break
			}
			rd.progress()
		}
		var data []byte
		var ts time.Time
		var length int
		var link uint32
		if rd.ng != nil {
			var ci gopacket.CaptureInfo
			data, ci, err = rd.ng.ZeroCopyReadPacketData()
			if err == nil {
				link, err = rd.ngLink(ci.InterfaceIndex)
			}
			ts, length = ci.Timestamp, ci.Length
		} else {
			data, ts, length, err = rd.readClassic()
			link = rd.classic.link
		}
		if err == io.EOF && rd.fr.err == nil && rd.fr.rest == 0 {
			err = nil
			break
		}
		if err != nil {
			err = rd.fileError(err)
			break
		}
		rd.stats.Packets++
		rd.handle(link, data, ts, length)
	}
	rd.sink.done()
	rd.stats.Bytes = rd.count.n
	rd.progress()
	return rd.stats, err
}

func (rd *Reader) progress() {
	if rd.conf.Progress != nil {
		rd.conf.Progress(rd.count.n, rd.size)
	}
}

func (rd *Reader) ngLink(i int) (uint32, error) {
	if i >= 0 && i < len(rd.links) {
		return rd.links[i], nil
	}
	iface, err := rd.ng.Interface(i)
	if err != nil {
		return 0, &causeError{fmt.Sprintf("packet on unknown interface %d", i), decode.ErrMalformed}
	}
	for len(rd.links) <= i {
		rd.links = append(rd.links, 0)
	}
	rd.links[i] = uint32(iface.LinkType)
	return rd.links[i], nil
}

func (rd *Reader) isExportPort(p uint16) bool { return rd.ports[p/64]&(1<<(p%64)) != 0 }

// handle turns one packet into records.
func (rd *Reader) handle(link uint32, data []byte, ts time.Time, length int) {
	// export datagrams' records go through rd.sink.Record, which may
	// overwrite the slot once r is no longer needed
	r := rd.sink.slot()
	*r = flow.Record{}
	payload, perr := packet.ParsePayload(link, data, r)
	if perr == nil && r.Proto == flow.ProtoUDP && payload != nil && (rd.isExportPort(r.DstPort) || rd.isExportPort(r.SrcPort)) {
		var dec decode.Decoder
		switch Sniff(payload) {
		case KindSFlow:
			dec = rd.deps.SFlow
		case KindNetFlow5, KindNetFlow9, KindIPFIX:
			dec = rd.deps.NetFlow
		}
		if dec != nil {
			rd.stats.ExportDatagrams++
			exporter := netip.AddrPortFrom(r.SrcAddr.Unmap(), r.SrcPort)
			if _, err := dec.Decode(exporter, payload, ts, &rd.sink); err != nil {
				rd.stats.Errors[decode.Cause(err)]++
			}
			return
		}
	}
	if perr != nil {
		key := "packet_malformed"
		if errors.Is(perr, decode.ErrTruncated) {
			key = "packet_truncated"
		}
		rd.stats.Errors[key]++
	}
	r.Format = flow.FormatPcap
	r.Start, r.End = ts, ts
	r.SamplingRate = 1
	r.Packets, r.SampledPackets = 1, 1
	r.Bytes = uint64(length)
	r.SampledBytes = r.Bytes
	r.FrameLength = uint32(length)
	packet.SetHeader(link, data, r)
	rd.sink.commit(r)
}

// countSink counts records on their way to the caller's sink, in an array
// by format and a run of the same exporter (map updates per record were a
// tenth of a large capture's reading time); done moves the counts into
// the Stats maps.
type countSink struct {
	stats    *Stats
	next     flow.Sink
	fill     flow.Filler // next, when it lends slots
	rec      flow.Record // the slot when next does not lend
	byFormat [256]uint64
	exporter netip.Addr
	run      uint64 // records of exporter not yet in ByExporter
}

func (s *countSink) Record(r *flow.Record) {
	s.count(r)
	s.next.Record(r)
}

// slot returns the record to fill: where the sink keeps it when it can
// say where (a flow.Filler), else s.rec; commit hands it over.
func (s *countSink) slot() *flow.Record {
	if s.fill != nil {
		return s.fill.Slot()
	}
	return &s.rec
}

func (s *countSink) commit(r *flow.Record) {
	if s.fill != nil {
		s.count(r)
		s.fill.Commit()
		return
	}
	s.Record(r)
}

func (s *countSink) count(r *flow.Record) {
	s.stats.Records++
	s.byFormat[r.Format]++
	if r.Format != flow.FormatPcap {
		if r.Exporter != s.exporter {
			s.flushExporter()
			s.exporter = r.Exporter
		}
		s.run++
	}
}

func (s *countSink) flushExporter() {
	if s.run > 0 {
		s.stats.ByExporter[s.exporter] += s.run
		s.run = 0
	}
}

func (s *countSink) done() {
	s.flushExporter()
	for f, n := range s.byFormat {
		if n > 0 {
			s.stats.ByFormat[flow.Format(f)] += n
		}
	}
	s.byFormat = [256]uint64{}
}

// Kind is what a UDP payload looks like.
type Kind uint8

// Kinds of UDP payload recognised by Sniff.
const (
	KindNone Kind = iota
	KindNetFlow5
	KindNetFlow9
	KindIPFIX
	KindSFlow
)

// Sniff reports which flow export b looks like, from its header alone:
// sFlow v5 (version 5, agent address type 1 or 2), NetFlow v5 (length
// matching the record count), NetFlow v9 (version 9, full header) or IPFIX
// (version 10, length field equal to the datagram length).
func Sniff(b []byte) Kind {
	if len(b) < 20 {
		return KindNone
	}
	switch binary.BigEndian.Uint16(b) {
	case 0:
		if binary.BigEndian.Uint16(b[2:]) == 5 && len(b) >= 28 {
			if t := binary.BigEndian.Uint32(b[4:]); t == 1 || t == 2 {
				return KindSFlow
			}
		}
	case 5:
		if n := int(binary.BigEndian.Uint16(b[2:])); n >= 1 && n <= 30 && len(b) == 24+48*n {
			return KindNetFlow5
		}
	case 9:
		return KindNetFlow9
	case 10:
		if int(binary.BigEndian.Uint16(b[2:])) == len(b) {
			return KindIPFIX
		}
	}
	return KindNone
}

// countingReader counts the bytes read from the file, for progress.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// framer hands a pcapng capture to pcapgo one block at a time, so that it
// always knows the offset of the block being read and can tell a clean end
// of file from a truncated block. For classic pcap, which readClassic
// parses itself, it only keeps the byte order and the offsets.
type framer struct {
	src        *bufio.Reader
	ng         bool
	order      binary.ByteOrder // pcap: from the magic; pcapng: from the section header
	off        int64            // bytes read so far
	blockStart int64            // offset of the current record or block
	rest       int64            // bytes left in the current block
	err        error            // sticky framing error (with the reason)
}

func (f *framer) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if f.rest == 0 {
		if err := f.next(); err != nil {
			return 0, err
		}
	}
	if int64(len(p)) > f.rest {
		p = p[:f.rest]
	}
	n, err := f.src.Read(p)
	f.off += int64(n)
	f.rest -= int64(n)
	if err == io.EOF {
		if f.rest > 0 {
			f.err = errTruncBlock
			return n, f.err
		}
		err = nil
	}
	return n, err
}

// next measures the next pcapng block; io.EOF at a clean boundary.
func (f *framer) next() error {
	f.blockStart = f.off
	h, err := f.src.Peek(12)
	if len(h) == 0 && err == io.EOF {
		return io.EOF
	}
	if len(h) < 8 {
		f.err = errTruncBlock
		return f.err
	}
	if binary.LittleEndian.Uint32(h) == 0x0a0d0d0a { // section header: byte order
		if len(h) < 12 {
			f.err = errTruncBlock
			return f.err
		}
		switch binary.LittleEndian.Uint32(h[8:]) {
		case 0x1a2b3c4d:
			f.order = binary.LittleEndian
		case 0x4d3c2b1a:
			f.order = binary.BigEndian
		default:
			f.err = errByteOrder
			return f.err
		}
	}
	if f.order == nil {
		f.err = errByteOrder
		return f.err
	}
	n := f.order.Uint32(h[4:])
	if n < 12 || n%4 != 0 {
		f.err = errBlockLen
		return f.err
	}
	f.rest = int64(n)
	return nil
}
