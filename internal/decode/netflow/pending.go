package netflow

// pendingSet is a data set that arrived before its template.
type pendingSet struct {
	h    hdr
	tid  uint16
	at   int64 // unix ns when it arrived
	data []byte
}

// hold keeps a copy of a data set whose template is unknown, within the
// per-exporter and global bounds. It reports whether the set was held.
func (d *Decoder) hold(e *exporter, h *hdr, tid uint16, set []byte, now int64) bool {
	if d.conf.PendingTTL < 0 || e.evicted || len(set) == 0 {
		return false
	}
	if len(e.pending) >= maxPendingPerExporter || e.pendingBytes+len(set) > maxPendingBytesPerExporter {
		return false
	}
	if d.c.pendingBytesTotal.Add(int64(len(set))) > maxPendingBytesTotal {
		d.c.pendingBytesTotal.Add(-int64(len(set)))
		return false
	}
	e.pending = append(e.pending, pendingSet{h: *h, tid: tid, at: now, data: append([]byte(nil), set...)})
	e.pendingBytes += len(set)
	d.c.pendingHeld.Add(1)
	return true
}

// expirePending drops held sets older than PendingTTL, counting them as
// template misses.
func (d *Decoder) expirePending(e *exporter, now int64) {
	ttl := int64(d.conf.PendingTTL)
	keep := e.pending[:0]
	for _, p := range e.pending {
		if now-p.at > ttl {
			d.dropped(e, len(p.data))
			continue
		}
		keep = append(keep, p)
	}
	clear(e.pending[len(keep):])
	e.pending = keep
}

func (d *Decoder) dropped(e *exporter, n int) {
	e.pendingBytes -= n
	d.c.pendingBytesTotal.Add(-int64(n))
	d.c.pendingExpired.Add(1)
	d.c.templateMisses.Add(1)
}

// dropAllPending forgets everything held for an evicted exporter.
func (e *exporter) dropAllPending(d *Decoder) {
	for _, p := range e.pending {
		d.dropped(e, len(p.data))
	}
	e.pending = nil
	e.evicted = true
}

// replay decodes the held sets of template tid in the run's domain.
func (r *run) replay(dm *domain, tid uint16, t *template) {
	e, d := r.e, r.d
	if len(e.pending) == 0 {
		return
	}
	keep := e.pending[:0]
	for _, p := range e.pending {
		if p.tid != tid || p.h.dkey != r.h.dkey {
			keep = append(keep, p)
			continue
		}
		e.pendingBytes -= len(p.data)
		d.c.pendingBytesTotal.Add(-int64(len(p.data)))
		d.c.pendingReplayed.Add(1)
		if t.options {
			if err := d.decodeOptions(dm, t, p.data); err != nil {
				r.fail(err)
			}
			continue
		}
		n, err := d.decodeData(e, dm, &p.h, t, p.data, r.sink)
		r.n += n
		if err != nil {
			r.fail(err)
		}
	}
	clear(e.pending[len(keep):])
	e.pending = keep
}
