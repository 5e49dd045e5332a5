package spam

// Tables returns the number of hosts that have a table of mail servers.
func (d *Detector) Tables() int {
	n := 0
	for _, s := range d.states {
		if s != nil {
			n++
		}
	}
	return n
}
