package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

type testConf struct {
	Customers []netip.Prefix `yaml:"customers"`
	Detect    struct {
		Netscan struct {
			Window          time.Duration `yaml:"window"`
			MinDestinations int           `yaml:"min_destinations"`
			MinPorts        uint64        `yaml:"min_ports"`
		} `yaml:"netscan"`
	} `yaml:"detect"`
	Ports []uint16 `yaml:"ports"`
}

func TestDecodeStrictNamesTheKey(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown nested key", "detect:\n  netscan:\n    window: 300s\n    min_destination: 3\n",
			"c.yaml:4: detect.netscan.min_destination: unknown key"},
		{"wrong type", "detect:\n  netscan:\n    min_destinations: many\n",
			"c.yaml:3: detect.netscan.min_destinations: wrong type: want a whole number"},
		{"unknown top key", "customer: [203.0.113.0/24]\n", "c.yaml:1: customer: unknown key"},
		{"bad prefix", "customers: [203.0.113.0/33]\n", "c.yaml:1: customers[0]: "},
		{"bad address in prefix", "customers:\n  - 203.0.113.0/24\n  - 300.1.1.0/24\n", "c.yaml:3: customers[1]: "},
		{"bad duration", "detect:\n  netscan:\n    window: soon\n", "c.yaml:3: detect.netscan.window: time: invalid duration"},
		{"fraction for a whole number", "detect:\n  netscan:\n    min_destinations: 2.7\n", "c.yaml:3: detect.netscan.min_destinations: must be a whole number, got 2.7"},
		{"negative for an unsigned number", "detect:\n  netscan:\n    min_ports: -5\n", "c.yaml:3: detect.netscan.min_ports: must not be negative, got -5"},
		{"negative in a list of ports", "ports: [22, -1]\n", "c.yaml:1: ports[1]: must not be negative, got -1"},
		{"quoted number", "detect:\n  netscan:\n    min_destinations: \"200\"\n", `c.yaml:3: detect.netscan.min_destinations: must be a number, not the text "200"`},
		{"quoted number in a list", "ports: [22, '1e2']\n", `c.yaml:1: ports[1]: must be a number, not the text "1e2"`},
		{"fraction for a duration is a duration problem", "detect:\n  netscan:\n    window: 1.5\n", "c.yaml:3: detect.netscan.window: wrong type: want a duration like 300s or 5m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c testConf
			err := decodeStrict("c.yaml", []byte(tt.yaml), &c)
			if err == nil {
				t.Fatalf("no error for %q", tt.yaml)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestDecodeStrictGood(t *testing.T) {
	var c testConf
	err := decodeStrict("c.yaml", []byte("customers: [203.0.113.0/24, \"2001:db8::/32\"]\ndetect:\n  netscan: {window: 5m, min_destinations: 250}\n"), &c)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Customers) != 2 || c.Customers[1] != netip.MustParsePrefix("2001:db8::/32") || c.Detect.Netscan.Window != 5*time.Minute || c.Detect.Netscan.MinDestinations != 250 {
		t.Fatalf("decoded %+v", c)
	}
}
