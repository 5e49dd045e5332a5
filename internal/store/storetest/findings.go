package storetest

import (
	"encoding/json"
	"net/netip"
	"time"

	"padlock/internal/store"
)

// FindingInputFor builds a finding with one evidence file.
func FindingInputFor(kind, ip string, customerID int64, at time.Time) store.FindingInput {
	d, _ := json.Marshal(map[string]any{"kind": kind, "internal_ip": ip, "last_seen": at})
	return store.FindingInput{Kind: kind, InternalIP: netip.MustParseAddr(ip), CustomerID: customerID, FirstSeen: at, LastSeen: at,
		Detail: d, Evidence: []store.Evidence{{Name: kind + ".txt", ContentType: "text/plain", Data: []byte("log at " + at.Format(time.RFC3339))}}}
}

// FindingFilterFor selects the findings of one IP and kind.
func FindingFilterFor(ip, kind string) store.FindingFilter {
	return store.FindingFilter{IP: netip.MustParseAddr(ip), Kind: kind}
}
