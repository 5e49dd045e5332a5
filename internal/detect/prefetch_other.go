//go:build !amd64 && !arm64

package detect

// prefetch does nothing where padlock has no assembly for it: the records
// then meet their cache misses one after another, as without warming.
func prefetch(addrs []uintptr) {}
