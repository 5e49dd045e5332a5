package flow

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// TestCopyToCopiesEveryField: CopyTo gives the same record as *dst = *r
// for a record with every field set (so a field added to Record later and
// forgotten in CopyTo fails here), and clears header bytes a longer header
// left in the recycled dst.
func TestCopyToCopiesEveryField(t *testing.T) {
	var r Record
	v := reflect.ValueOf(&r).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch v.Type().Field(i).Name {
		case "Start", "End":
			f.Set(reflect.ValueOf(time.Date(2026, 11, 25, 17, 0, i, 0, time.UTC)))
		case "Exporter", "SrcAddr", "DstAddr":
			f.Set(reflect.ValueOf(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})))
		case "SrcMAC", "DstMAC":
			f.Set(reflect.ValueOf(MAC{2, 0, 0, 0, 0, byte(i)}))
		case "Header":
			// set below with HeaderLength
		default:
			switch f.Kind() {
			case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				f.SetUint(uint64(i + 1))
			default:
				t.Fatalf("field %s of kind %s: teach this test to set it", v.Type().Field(i).Name, f.Kind())
			}
		}
	}
	r.SetHeader([]byte{0xde, 0xad, 0xbe, 0xef})

	var dst Record
	dst.SetHeader(make([]byte, MaxHeader)) // a longer header from the batch's last use
	for i := range dst.Header {
		dst.Header[i] = 0xff
	}
	r.CopyTo(&dst)
	if !reflect.DeepEqual(dst, r) {
		t.Errorf("CopyTo differs from assignment:\n got %+v\nwant %+v", dst, r)
	}
}

func BenchmarkCopyTo(b *testing.B) {
	r := Record{SrcAddr: netip.MustParseAddr("203.0.113.1"), DstAddr: netip.MustParseAddr("198.51.100.1"), Packets: 1}
	var dst Record
	for b.Loop() {
		r.CopyTo(&dst)
	}
}

func BenchmarkAssign(b *testing.B) {
	r := Record{SrcAddr: netip.MustParseAddr("203.0.113.1"), DstAddr: netip.MustParseAddr("198.51.100.1"), Packets: 1}
	var dst Record
	for b.Loop() {
		dst = r
	}
	_ = dst
}
