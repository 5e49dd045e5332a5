package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"time"

	gomail "github.com/wneessen/go-mail"

	"padlock/internal/mail"
)

// Sender delivers outbox mails to one SMTP server. Each Send opens its own
// connection, so a Sender is safe for concurrent use.
type Sender struct {
	conf   SMTPConfig
	domain string
}

// NewSender checks conf (after defaults) and returns a sender; it does no I/O.
func NewSender(conf SMTPConfig, messageIDDomain string) (*Sender, error) {
	c := Configuration{SMTP: conf, MessageIDDomain: messageIDDomain}.withDefaults()
	if !c.SMTP.Configured() {
		return nil, errors.New("notify.smtp.host: not set")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Sender{conf: c.SMTP, domain: c.MessageIDDomain}, nil
}

// MessageID is the Message-ID (without angle brackets) of an outbox mail.
// It depends only on the outbox record, so a mail sent again after a crash
// between delivery and MarkMailSent carries the same Message-ID and mail
// clients show it once; the creation time keeps ids of a fresh database from
// colliding with those of an old one.
func MessageID(q mail.Queued, domain string) string {
	return fmt.Sprintf("padlock.outbox.%d.%d@%s", q.ID, q.CreatedAt.Unix(), domain)
}

// PermanentError marks a delivery the server refused for good (5xx): trying
// again soon will not help.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is a permanent delivery failure.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// build turns an outbox mail into a MIME message: multipart/mixed with a
// multipart/alternative (text, HTML) and the attachments.
func (s *Sender) build(q mail.Queued) (*gomail.Msg, error) {
	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := m.From(s.conf.From); err != nil {
		return nil, fmt.Errorf("from %q: %w", s.conf.From, err)
	}
	if err := m.To(q.To); err != nil {
		return nil, fmt.Errorf("to %q: %w", q.To, err)
	}
	m.Subject(q.Subject)
	m.SetMessageIDWithValue(MessageID(q, s.domain))
	date := q.CreatedAt
	if date.IsZero() {
		date = time.Now()
	}
	m.SetDateWithValue(date)
	m.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	m.SetGenHeader(gomail.HeaderXAutoResponseSuppress, "All")
	m.SetGenHeader(gomail.HeaderXMailer, "padlock")
	m.SetBodyString(gomail.TypeTextPlain, q.Text)
	if q.HTML != "" {
		m.AddAlternativeString(gomail.TypeTextHTML, q.HTML)
	}
	for _, a := range q.Attachments {
		ct := a.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		if err := m.AttachReader(a.Name, bytes.NewReader(a.Data),
			gomail.WithFileContentType(gomail.ContentType(ct))); err != nil {
			return nil, fmt.Errorf("attachment %s: %w", a.Name, err)
		}
	}
	return m, nil
}

// WriteMessage writes the message Send would deliver (RFC 5322, with
// headers) to w; the admin area can offer it for download.
func (s *Sender) WriteMessage(w io.Writer, q mail.Queued) error {
	m, err := s.build(q)
	if err != nil {
		return fmt.Errorf("mail %d: %w", q.ID, err)
	}
	if _, err := m.WriteTo(w); err != nil {
		return fmt.Errorf("mail %d: %w", q.ID, err)
	}
	return nil
}

func (s *Sender) client() (*gomail.Client, error) {
	tlsConf := &tls.Config{
		ServerName:         s.conf.Host,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: s.conf.TLSSkipVerify, //nolint:gosec // tests only, documented
	}
	opts := []gomail.Option{
		gomail.WithPort(s.conf.Port),
		gomail.WithTimeout(s.conf.Timeout),
		gomail.WithTLSConfig(tlsConf),
	}
	switch s.conf.TLS {
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if s.conf.HELO != "" {
		opts = append(opts, gomail.WithHELO(s.conf.HELO))
	}
	if s.conf.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlain),
			gomail.WithUsername(s.conf.Username), gomail.WithPassword(s.conf.Password))
	}
	return gomail.NewClient(s.conf.Host, opts...)
}

// Send delivers one outbox mail. A refusal the server calls permanent
// (5xx) comes back as *PermanentError; everything else (connection
// problems, 4xx) is temporary.
func (s *Sender) Send(ctx context.Context, q mail.Queued) error {
	m, err := s.build(q)
	if err != nil {
		return &PermanentError{Err: fmt.Errorf("mail %d: %w", q.ID, err)}
	}
	c, err := s.client()
	if err != nil {
		return &PermanentError{Err: fmt.Errorf("smtp client: %w", err)}
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		if m.IsDelivered() {
			// The server took the mail; only QUIT failed. Sending it
			// again would deliver it twice.
			return nil
		}
		var se *gomail.SendError
		if errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500 {
			return &PermanentError{Err: fmt.Errorf("smtp %s:%d: %w", s.conf.Host, s.conf.Port, err)}
		}
		return fmt.Errorf("smtp %s:%d: %w", s.conf.Host, s.conf.Port, err)
	}
	return nil
}
