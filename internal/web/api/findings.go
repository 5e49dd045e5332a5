package api

import (
	"net/http"
	"net/netip"
	"time"

	"padlock/internal/lock"
)

// FindingFilter selects findings.
type FindingFilter struct {
	IP    netip.Addr
	Kind  string
	Limit int
}

// FindingSummary is a stored finding as the API lists it.
type FindingSummary struct {
	ID         int64      `json:"id"`
	Kind       string     `json:"kind"`
	Rule       string     `json:"rule"`
	Direction  string     `json:"direction"`
	InternalIP netip.Addr `json:"internal_ip"`
	CustomerID int64      `json:"customer_id,omitempty"`
	FirstSeen  time.Time  `json:"first_seen"`
	LastSeen   time.Time  `json:"last_seen"`
	Measured   float64    `json:"measured"`
	Threshold  float64    `json:"threshold"`
	Samples    uint64     `json:"samples"`
	Count      int        `json:"count"` // findings appended to this case
	LockID     int64      `json:"lock_id,omitempty"`
	Evidence   []string   `json:"evidence"` // file names, under /api/v1/findings/{id}/evidence/{name}
}

func (a *API) listFindings(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	if a.findings == nil {
		return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "findings are not stored by this server"}
	}
	q := r.URL.Query()
	f := FindingFilter{Kind: q.Get("kind")}
	if v := q.Get("ip"); v != "" {
		ip, err := netip.ParseAddr(v)
		if err != nil {
			return badRequest("ip", "ip must be an IP address, not %q", v)
		}
		f.IP = ip.Unmap()
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		return err
	}
	f.Limit = int(limit)
	fs, err := a.findings.ListFindings(r.Context(), actor, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list(fs))
	return nil
}

func (a *API) evidenceFile(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	if a.findings == nil {
		return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "findings are not stored by this server"}
	}
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	ct, data, err := a.findings.EvidenceFile(r.Context(), actor, id, r.PathValue("name"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", `attachment; filename="`+r.PathValue("name")+`"`)
	_, _ = w.Write(data)
	return nil
}
