package detect

import "net/netip"

// Ends exposes ends to the external tests.
func (p *Prefixes) Ends(src, dst netip.Addr) uint8 { return p.ends(src, dst) }
