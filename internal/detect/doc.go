// Package detect is padlock's detection engine: it runs every detector over
// one flow.Record stream and reports Findings. It owns the engine (host
// table, event time, expiry, re-arm), the `detect:` configuration and the
// finding types (defined in detect/detector, aliased here). The detectors
// live in one package each — packetlimit, netscan, attack, spam, netconf
// (incorrect_network_config) — and implement detector.Detector. It imports
// internal/flow and the Prometheus client; it must not import collectors,
// decoders, evidence rendering, locking, storage or commands.
//
// Orientation. For each record the engine asks Networks which ends are
// internal. An internal source makes the record OUT traffic of that address,
// an internal destination IN traffic of that one (both when both are
// internal); every detector sees the record once per internal end, with the
// internal address's dense host index. A record with no internal end goes
// to incorrect_network_config as a spoofed/foreign source.
//
// Time. Event time is the highest record end seen; windows, expiry, re-arm
// and the netscan answer grace all run on it, never on the wall clock, so
// `padlock analyze` of a capture gives the verdicts the live pipeline gave.
// A live pipeline also calls Expire(now) from a ticker, so state ages while
// no records arrive. Flush at the end of input emits pending verdicts.
//
// Findings. A detector fires as soon as its window proves a rule (window
// sums are lower bounds, never estimates upwards). OnFinding receives it
// synchronously. One finding per (address, rule) per rearm period (default
// 15 minutes of event time): a continuing abuse is not re-reported with
// every record. Addresses in Protected prefixes are still reported, marked
// Protected, and must never lead to an action.
//
// Sampling. Packets and bytes in records are already scaled by the sampling
// rate; flows, records and distinct counts are not. Every finding states
// the highest sampling rate and the number of contributing records
// (Samples); every detector has a min_samples floor.
//
// Cost. Record does one lookup per internal end in an open-addressing
// table of IPv4 addresses (a map for IPv6), calls the detectors directly,
// and allocates nothing in steady state. Every detector's small per-host
// state — last record end, packet-limit meters, attack gate, netscan
// filter — sits in one engine-owned record per host (detector.Host, 128
// bytes, two adjacent cache lines), not in one line of each detector's own
// array. Records takes a batch: with many active hosts it first fetches a
// group's state (index slots, host records, netscan's state and contact
// slots) in passes whose cache misses overlap, then runs the group. The
// engine is single-goroutine; to scale, shard records by internal address
// over one engine per core. Memory per active internal address is that record, a
// host slot (~40 bytes) and 16 bytes of index; hosts that initiate contact
// carry a small contact table (128 bytes to start), and only suspicious
// hosts get per-second rings, target tables and sample buffers. A million
// active addresses stay well under 1 GiB (TestMemoryMillionHosts).
package detect
