//go:build tools

// Package deps pins the third-party modules the project builds on, so that
// parallel work on separate packages never has to edit go.mod. It is never
// compiled into the binary.
package deps

import (
	_ "github.com/alexedwards/argon2id"
	_ "github.com/alexedwards/scs/v2"
	_ "github.com/axiomhq/hyperloglog"
	_ "github.com/chromedp/chromedp"
	_ "github.com/emersion/go-sasl"
	_ "github.com/emersion/go-smtp"
	_ "github.com/goccy/go-yaml"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/google/nftables"
	_ "github.com/google/nftables/expr"
	_ "github.com/gopacket/gopacket"
	_ "github.com/gopacket/gopacket/layers"
	_ "github.com/gopacket/gopacket/pcapgo"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/nats-io/nats.go"
	_ "github.com/nats-io/nats.go/jetstream"
	_ "github.com/netsampler/goflow2/v2/decoders/netflow"
	_ "github.com/netsampler/goflow2/v2/decoders/netflowlegacy"
	_ "github.com/netsampler/goflow2/v2/decoders/sflow"
	_ "github.com/osrg/gobgp/v4/api"
	_ "github.com/osrg/gobgp/v4/pkg/server"
	_ "github.com/pressly/goose/v3"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/vishvananda/netns"
	_ "github.com/wneessen/go-mail"
	_ "golang.org/x/sys/unix"
	_ "modernc.org/sqlite"
)
