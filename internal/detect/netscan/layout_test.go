package netscan

import (
	"testing"
	"unsafe"
)

// TestHostStateLayout: a host's probe path reads one cache line of its
// state (see hostState), so the fields it needs sit in the first 64 bytes
// and the state is a whole number of lines.
func TestHostStateLayout(t *testing.T) {
	var s hostState
	if sz := unsafe.Sizeof(s); sz%64 != 0 {
		t.Errorf("hostState is %d bytes, want a multiple of 64", sz)
	}
	if off := unsafe.Offsetof(s.pend) + unsafe.Offsetof(s.pend.at); off+8 > 64 {
		t.Errorf("pend.at at offset %d, want in the first cache line", off)
	}
}

// A contact stays 32 bytes: two to a cache line.
func TestContactLayout(t *testing.T) {
	if sz := unsafe.Sizeof(contact{}); sz != 32 {
		t.Errorf("contact is %d bytes, want 32", sz)
	}
}
