package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

func TestConfigurationValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		yaml string
		want []string // substrings of the error; none: valid
	}{
		"empty (demo: no smtp)": {``, nil},
		"issue example":         {`smtp: {host: 127.0.0.1, port: 25, from: abuse@example.net, tls: none}`, nil},
		"starttls auth": {`
smtp: {host: mail.example.net, from: "Abuse <abuse@example.net>", tls: starttls, username: u, password: p, helo: padlock.example.net}
templates: /etc/padlock/templates
client_area_url: https://robot.example.net/
retry_min: 30s
retry_max: 2h`, nil},
		"port":            {`smtp: {host: h, port: 70000, from: a@b.c, tls: none}`, []string{"notify.smtp.port: must be 1-65535"}},
		"negative port":   {`smtp: {host: h, port: -1, from: a@b.c}`, []string{"notify.smtp.port: must be 1-65535"}},
		"tls":             {`smtp: {host: h, from: a@b.c, tls: ssl}`, []string{`notify.smtp.tls: must be none, starttls or tls, not "ssl"`}},
		"from missing":    {`smtp: {host: h}`, []string{"notify.smtp.from: required"}},
		"from bad":        {`smtp: {host: h, from: "not an address"}`, []string{"notify.smtp.from:"}},
		"password alone":  {`smtp: {host: h, from: a@b.c, username: u}`, []string{"notify.smtp.username: username and password go together"}},
		"auth in clear":   {`smtp: {host: mail.example.net, from: a@b.c, tls: none, username: u, password: p}`, []string{"notify.smtp.username: authentication needs tls"}},
		"host with port":  {`smtp: {host: "mail:25", from: a@b.c}`, []string{"notify.smtp.host:"}},
		"retry order":     {`{retry_min: 2h, retry_max: 1h}`, []string{"notify.retry_max: must not be less than retry_min"}},
		"lease":           {`{smtp: {host: h, from: a@b.c, timeout: 10m}, lease: 5m}`, []string{"notify.lease: must be longer than smtp.timeout"}},
		"url":             {`client_area_url: robot.example.net`, []string{"notify.client_area_url:"}},
		"batch":           {`batch_size: 5000`, []string{"notify.batch_size: must be 1-1000"}},
		"several at once": {`smtp: {host: h, port: 0, tls: x}`, []string{"notify.smtp.tls:", "notify.smtp.from:"}},
	} {
		t.Run(name, func(t *testing.T) {
			var c Configuration
			if err := yaml.UnmarshalWithOptions([]byte(tc.yaml), &c, yaml.Strict()); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("invalid config accepted, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestConfigurationDefaults(t *testing.T) {
	c := Configuration{SMTP: SMTPConfig{Host: "h", From: "Abuse <abuse@example.net>"}}.withDefaults()
	if c.SMTP.TLS != TLSStartTLS || c.SMTP.Port != 587 || c.MessageIDDomain != "example.net" ||
		c.Lease != 5*time.Minute || c.RetryMin != time.Minute || c.RetryMax != time.Hour || c.BatchSize != 20 {
		t.Errorf("defaults: %+v", c)
	}
	for mode, port := range map[string]int{TLSNone: 25, TLSStartTLS: 587, TLSImplicit: 465} {
		if got := (Configuration{SMTP: SMTPConfig{TLS: mode}}).withDefaults().SMTP.Port; got != port {
			t.Errorf("tls %s: default port %d, want %d", mode, got, port)
		}
	}
}
