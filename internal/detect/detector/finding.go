package detector

import (
	"encoding/json"
	"net/netip"
	"time"

	"padlock/internal/flow"
)

// Kind is the kind of abuse a finding reports. The values double as lock
// reasons where a lock follows from a finding.
type Kind string

const (
	KindPacketLimit   Kind = "packet_limit"
	KindNetscan       Kind = "netscan"
	KindAttack        Kind = "network_attack"
	KindSpam          Kind = "spam"
	KindIncorrectConf Kind = "incorrect_network_config"
)

// Kinds lists every kind.
var Kinds = []Kind{KindPacketLimit, KindNetscan, KindAttack, KindSpam, KindIncorrectConf}

// Direction is seen from the internal (customer) address: OUT is traffic the
// customer's server sends, IN is traffic it receives.
type Direction string

const (
	DirOut Direction = "out"
	DirIn  Direction = "in"
)

// Counters are the totals of one summary line: packets and bytes scaled by
// the sampling rate, flows as received (never scaled by the sampling rate).
type Counters struct {
	Packets uint64 `json:"packets"`
	Flows   uint64 `json:"flows"`
	Bytes   uint64 `json:"bytes"`
}

// Merge adds o to c.
func (c *Counters) Merge(o Counters) {
	c.Packets += o.Packets
	c.Bytes += o.Bytes
	c.Flows += o.Flows
}

// External is one remote address of a packet-limit or attack summary.
type External struct {
	Addr netip.Addr `json:"addr"`
	Counters
}

// Summary is the seed's "Summary on exceeded packet limits".
type Summary struct {
	Direction    Direction     `json:"direction"`
	Internal     netip.Addr    `json:"internal"`
	ThresholdPPS uint64        `json:"threshold_pps"`
	Window       time.Duration `json:"window"` // the period the sums cover (300 s in the seed)
	Sum          Counters      `json:"sum"`
	Externals    []External    `json:"externals"` // sorted by packets, descending; capped
	// ExternalsOmitted counts remote addresses left out of Externals
	// (packet_limit: beyond its tracked addresses an estimate, within a
	// few per cent).
	ExternalsOmitted int `json:"externals_omitted,omitempty"`
}

// MarshalJSON writes the summary with its period as a duration ("5m0s",
// as durations are written in the configuration), not in nanoseconds.
func (s Summary) MarshalJSON() ([]byte, error) {
	type plain Summary // without this method
	return json.Marshal(struct {
		plain
		Window string `json:"window"`
	}{plain(s), s.Window.String()})
}

// Probe is one line of the seed's netscan log.
type Probe struct {
	Time    time.Time  `json:"time"`
	Src     netip.Addr `json:"src"`
	Dst     netip.Addr `json:"dst"`
	DstPort uint16     `json:"dst_port"`
	Proto   uint8      `json:"proto"`
}

// Finding is what a detector reports about one internal address.
type Finding struct {
	Kind       Kind       `json:"kind"`
	Direction  Direction  `json:"direction"`
	InternalIP netip.Addr `json:"internal_ip"`
	// Rule names the rule that fired, e.g. "packet_limit.pps",
	// "netscan.horizontal", "attack.syn_flood", "incorrect_network_config.foreign_source".
	Rule      string  `json:"rule"`
	Measured  float64 `json:"measured"`
	Threshold float64 `json:"threshold"`
	Unit      string  `json:"unit"` // "packets/s", "destinations", "ports", ...

	FirstSeen time.Time `json:"first_seen"` // window start / first contributing record
	LastSeen  time.Time `json:"last_seen"`  // window end / last contributing record

	SamplingRate uint32 `json:"sampling_rate"` // highest sampling rate among contributing records
	Samples      uint64 `json:"samples"`       // contributing records/samples as received

	// Detail is a one-line human explanation ("SYN to 812 hosts on port 22").
	Detail string `json:"detail,omitempty"`
	// Source is the offending source address for incorrect_network_config
	// findings whose source belongs to nobody (spoofed); otherwise invalid.
	Source netip.Addr `json:"source,omitzero"`
	// Remote is the external address the rule is about when there is one
	// (attack target, vertically scanned host, mail server).
	Remote netip.Addr `json:"remote,omitzero"`
	// Port is the port the rule is about when there is one (horizontally
	// scanned port, brute-forced login port, reflecting service port).
	Port uint16 `json:"port,omitempty"`
	// MAC is the source MAC of an incorrect_network_config finding, when the
	// data carries it.
	MAC flow.MAC `json:"mac,omitzero"`
	// Owner is the inventory owner (customer/server id) the rule relates to:
	// for incorrect_network_config.foreign_address the owner of the MAC that
	// sent another owner's address.
	Owner string `json:"owner,omitempty"`
	// Protected is set when InternalIP lies in a protected prefix: the finding
	// is reported for information and must never lead to an action.
	Protected bool `json:"protected,omitempty"`

	// Evidence.
	Summary       *Summary `json:"summary,omitempty"`
	Probes        []Probe  `json:"probes,omitempty"` // netscan log lines, capped
	ProbesOmitted int      `json:"probes_omitted,omitempty"`
	// Packets are sample records for the traffic dump (bounded; copies).
	Packets        []flow.Record `json:"-"`
	PacketsOmitted int           `json:"packets_omitted,omitempty"`
}
