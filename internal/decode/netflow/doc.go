// Package netflow decodes NetFlow v5, NetFlow v9 and IPFIX export datagrams
// into flow.Record values. It owns the template cache (per exporter address
// and port, per v9 source ID / IPFIX observation domain), the sampling rates
// learned from options data, and the short-lived queue of data sets that
// arrived before their template. Templates are compiled once, when learned,
// into a list of field operations with offsets, so that decoding a data
// record allocates nothing.
//
// It imports only the standard library, internal/flow and internal/decode;
// it must not import collectors, detectors or goflow2 (goflow2 is used only in
// its tests, as the oracle the differential test holds this decoder to).
package netflow
