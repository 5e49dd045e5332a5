package detect

import (
	"errors"
	"fmt"
	"time"

	"padlock/internal/detect/attack"
	"padlock/internal/detect/netconf"
	"padlock/internal/detect/netscan"
	"padlock/internal/detect/packetlimit"
	"padlock/internal/detect/spam"
)

// Configuration is the `detect:` block of padlock's configuration. Each
// field's documentation (and each detector package's Configuration) gives
// its default; Defaults returns them all. Durations are written as "300s",
// "5m". The struct carries only yaml tags so a strict top-level decoder can
// embed it: decode into Defaults() and call Validate.
type Configuration struct {
	PacketLimit            packetlimit.Configuration `yaml:"packet_limit"`
	Netscan                netscan.Configuration     `yaml:"netscan"`
	Attack                 attack.Configuration      `yaml:"attack"`
	Spam                   spam.Configuration        `yaml:"spam"`
	IncorrectNetworkConfig netconf.Configuration     `yaml:"incorrect_network_config"`
	// Rearm is how long, in event time, a finding for the same internal
	// address (or spoofed source) and rule is suppressed after one was
	// reported: a continuing abuse yields one finding per rearm period, not
	// one per record. Default 15m.
	Rearm Duration `yaml:"rearm"`
	// HostExpiry drops the state of an internal address that sent or
	// received nothing for this long (event time); at least the largest
	// window. Default 10m.
	HostExpiry Duration `yaml:"host_expiry"`
	Evidence   Evidence `yaml:"evidence"`
}

// Evidence bounds what a finding carries.
type Evidence struct {
	// Packets is the number of sample records (for the traffic dump and
	// pcap) a finding carries; records with packet headers are preferred.
	// Default 32.
	Packets int `yaml:"packets"`
	// Probes is the number of netscan log lines (and spam destinations) a
	// finding carries; the rest are counted in ProbesOmitted. Default 1000.
	Probes int `yaml:"probes"`
}

// Defaults returns the documented defaults, suited to a production edge.
func Defaults() Configuration {
	return Configuration{
		PacketLimit:            packetlimit.Defaults(),
		Netscan:                netscan.Defaults(),
		Attack:                 attack.Defaults(),
		Spam:                   spam.Defaults(),
		IncorrectNetworkConfig: netconf.Defaults(),
		Rearm:                  Duration(15 * time.Minute),
		HostExpiry:             Duration(10 * time.Minute),
		Evidence:               Evidence{Packets: 32, Probes: 1000},
	}
}

// Validate checks the configuration. Every error names its key, e.g.
// "detect.netscan.window: must be >= 1s".
func (c Configuration) Validate() error {
	var errs []error
	sub := func(key string, err error) {
		if err == nil {
			return
		}
		// one line per problem, each with the full key
		for _, e := range unjoin(err) {
			errs = append(errs, fmt.Errorf("detect.%s.%w", key, e))
		}
	}
	sub("packet_limit", c.PacketLimit.Validate())
	sub("netscan", c.Netscan.Validate())
	sub("attack", c.Attack.Validate())
	sub("spam", c.Spam.Validate())
	sub("incorrect_network_config", c.IncorrectNetworkConfig.Validate())
	if c.Rearm < 0 {
		errs = append(errs, errors.New("detect.rearm: must be >= 0"))
	}
	windows := []struct {
		key string
		w   Duration
	}{{"packet_limit", c.PacketLimit.Window}, {"netscan", c.Netscan.Window}, {"attack", c.Attack.Window},
		{"spam", c.Spam.Window}, {"incorrect_network_config", c.IncorrectNetworkConfig.Window}}
	longest := windows[0]
	for _, w := range windows[1:] {
		if w.w > longest.w {
			longest = w
		}
	}
	if c.HostExpiry < longest.w {
		errs = append(errs, fmt.Errorf("detect.host_expiry: %s is shorter than detect.%s.window (%s), the longest window: a host's state would expire inside it; set host_expiry to at least %s",
			c.HostExpiry.D(), longest.key, longest.w.D(), longest.w.D()))
	}
	if c.Evidence.Packets < 1 || c.Evidence.Packets > 10000 {
		errs = append(errs, errors.New("detect.evidence.packets: must be between 1 and 10000"))
	}
	if c.Evidence.Probes < 1 {
		errs = append(errs, errors.New("detect.evidence.probes: must be >= 1"))
	}
	return errors.Join(errs...)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
