//go:build amd64 || arm64

package detect

// prefetch asks the processor to bring the cache line at each address into
// its caches, without waiting for any of them: unlike loads, prefetches do
// not hold up the instructions after them, so the whole list is in flight
// at once. An address that is not mapped is ignored, never a fault.
//
//go:noescape
func prefetch(addrs []uintptr)

// prefetching: Records warms a group's state ahead of its records.
const prefetching = true
