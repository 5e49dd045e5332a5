//go:build !amd64 && !arm64

package detect

// prefetch does nothing where padlock has no assembly for it.
func prefetch(addrs []uintptr) {}

// prefetching: without prefetches warming would only add work, so Records
// runs the records one by one (their cache misses one after another).
const prefetching = false
