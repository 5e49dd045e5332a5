package notify

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"padlock/internal/mail"
)

// parsedMail is a received message taken apart with net/mail and
// mime/multipart, as a mail client would.
type parsedMail struct {
	Header      netmail.Header
	Subject     string
	Text, HTML  string
	Attachments map[string][]byte
	AttachTypes map[string]string
}

func parseMail(t *testing.T, raw []byte) parsedMail {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("received message does not parse: %v\n%s", err, raw)
	}
	p := parsedMail{Header: msg.Header, Attachments: map[string][]byte{}, AttachTypes: map[string]string{}}
	dec := new(mime.WordDecoder)
	if p.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		t.Fatal(err)
	}
	walkPart(t, msg.Header.Get("Content-Type"), msg.Body, &p)
	return p
}

func walkPart(t *testing.T, contentType string, body io.Reader, p *parsedMail) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		t.Fatalf("content type %q: %v", contentType, err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		t.Fatalf("unexpected single part %s", mt)
	}
	mr := multipart.NewReader(body, params["boundary"])
	for {
		part, err := mr.NextPart() // decodes quoted-printable itself
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		ct := part.Header.Get("Content-Type")
		pmt, _, _ := mime.ParseMediaType(ct)
		var data []byte
		if strings.HasPrefix(pmt, "multipart/") {
			walkPart(t, ct, part, p)
			continue
		}
		data, err = io.ReadAll(part)
		if err != nil {
			t.Fatal(err)
		}
		if strings.EqualFold(part.Header.Get("Content-Transfer-Encoding"), "base64") {
			if data, err = base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(data))); err != nil {
				t.Fatal(err)
			}
		}
		if name := part.FileName(); name != "" {
			p.Attachments[name] = data
			p.AttachTypes[name] = pmt
			continue
		}
		switch pmt {
		case "text/plain":
			p.Text = strings.ReplaceAll(string(data), "\r\n", "\n")
		case "text/html":
			p.HTML = strings.ReplaceAll(string(data), "\r\n", "\n")
		default:
			t.Errorf("unexpected part %s", pmt)
		}
	}
}

// pcapBytes is a binary attachment: a pcap header with every byte value.
func pcapBytes() []byte {
	b := []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0}
	for i := 0; i < 256; i++ {
		b = append(b, byte(i))
	}
	return b
}

func queuedLockMail(t *testing.T, id int64) mail.Queued {
	t.Helper()
	r := newTestRenderer(t, "")
	ev := testEvent(KindLock, "netscan")
	ev.Evidence = append(ev.Evidence, mail.Attachment{Name: "traffic.pcap", ContentType: "application/vnd.tcpdump.pcap", Data: pcapBytes()})
	m, err := r.Render(ev)
	if err != nil {
		t.Fatal(err)
	}
	return mail.Queued{ID: id, Message: m, CreatedAt: time.Date(2026, 11, 25, 14, 22, 30, 0, time.UTC)}
}

// checkDelivered asserts that what the server got is the queued mail: the
// subject with the Locking ID, the text and HTML parts, the evidence byte
// for byte, and the headers that make a resend recognisable.
func checkDelivered(t *testing.T, got received, q mail.Queued) {
	t.Helper()
	if got.From != "abuse@example.net" || len(got.To) != 1 || got.To[0] != q.To {
		t.Errorf("envelope from %q to %v, want abuse@example.net to %s", got.From, got.To, q.To)
	}
	p := parseMail(t, got.Data)
	if !strings.HasPrefix(p.Subject, "[L0029DB12] ") || p.Subject != q.Subject {
		t.Errorf("subject %q, want %q", p.Subject, q.Subject)
	}
	if p.Text != q.Text {
		t.Errorf("text part differs:\n got %q\nwant %q", p.Text, q.Text)
	}
	if p.HTML != q.HTML {
		t.Errorf("HTML part differs:\n got %q\nwant %q", p.HTML, q.HTML)
	}
	if len(p.Attachments) != len(q.Attachments) {
		t.Errorf("%d attachments, want %d", len(p.Attachments), len(q.Attachments))
	}
	for _, a := range q.Attachments {
		if !bytes.Equal(p.Attachments[a.Name], a.Data) {
			t.Errorf("attachment %s differs: got %d bytes %q, want %d bytes", a.Name, len(p.Attachments[a.Name]), p.Attachments[a.Name], len(a.Data))
		}
		if p.AttachTypes[a.Name] != a.ContentType {
			t.Errorf("attachment %s has type %q, want %q", a.Name, p.AttachTypes[a.Name], a.ContentType)
		}
	}
	if want := "<" + MessageID(q, "example.net") + ">"; p.Header.Get("Message-Id") != want {
		t.Errorf("Message-ID %q, want %q", p.Header.Get("Message-Id"), want)
	}
	if d, err := p.Header.Date(); err != nil || !d.Equal(q.CreatedAt) {
		t.Errorf("Date %v (%v), want %v", d, err, q.CreatedAt)
	}
	if v := p.Header.Get("Auto-Submitted"); v != "auto-generated" {
		t.Errorf("Auto-Submitted %q", v)
	}
	if from, err := p.Header.AddressList("From"); err != nil || from[0].Address != "abuse@example.net" || from[0].Name != "Abuse Team" {
		t.Errorf("From %v (%v)", from, err)
	}
}

func senderFor(t *testing.T, s *smtpServer, mod func(*SMTPConfig)) *Sender {
	t.Helper()
	conf := SMTPConfig{Host: s.Host, Port: s.Port, From: "Abuse Team <abuse@example.net>", TLS: TLSNone, Timeout: 5 * time.Second}
	if mod != nil {
		mod(&conf)
	}
	snd, err := NewSender(conf, "")
	if err != nil {
		t.Fatal(err)
	}
	return snd
}

func TestSendPlain(t *testing.T) {
	srv := startSMTPServer(t, serverOptions{})
	q := queuedLockMail(t, 17)
	if err := senderFor(t, srv, nil).Send(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	msgs := srv.messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages, want 1", len(msgs))
	}
	if msgs[0].TLS || msgs[0].User != "" {
		t.Errorf("plain session: tls=%v user=%q", msgs[0].TLS, msgs[0].User)
	}
	checkDelivered(t, msgs[0], q)
}

func TestSendPlainAuthOnLoopback(t *testing.T) {
	srv := startSMTPServer(t, serverOptions{user: "padlock", pass: "s3cret"})
	q := queuedLockMail(t, 18)
	snd := senderFor(t, srv, func(c *SMTPConfig) { c.Username, c.Password = "padlock", "s3cret" })
	if err := snd.Send(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	if msgs := srv.messages(); len(msgs) != 1 || msgs[0].User != "padlock" {
		t.Fatalf("server got %+v, want one message from user padlock", msgs)
	}
}

func TestSendStartTLSWithAuth(t *testing.T) {
	srv := startSMTPServer(t, serverOptions{startTLS: true, user: "padlock", pass: "s3cret"})
	q := queuedLockMail(t, 19)
	snd := senderFor(t, srv, func(c *SMTPConfig) {
		c.TLS, c.TLSSkipVerify, c.Username, c.Password = TLSStartTLS, true, "padlock", "s3cret"
	})
	if err := snd.Send(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	msgs := srv.messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages, want 1", len(msgs))
	}
	if !msgs[0].TLS || msgs[0].User != "padlock" {
		t.Errorf("session tls=%v user=%q, want STARTTLS and AUTH PLAIN as padlock", msgs[0].TLS, msgs[0].User)
	}
	checkDelivered(t, msgs[0], q)

	// The same server with certificate checks on: the self-signed
	// certificate is refused and nothing is sent.
	strict := senderFor(t, srv, func(c *SMTPConfig) {
		c.TLS, c.Username, c.Password = TLSStartTLS, "padlock", "s3cret"
	})
	if err := strict.Send(context.Background(), q); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("unverified certificate: err = %v, want a certificate error", err)
	}
	// A wrong password is refused.
	wrong := senderFor(t, srv, func(c *SMTPConfig) {
		c.TLS, c.TLSSkipVerify, c.Username, c.Password = TLSStartTLS, true, "padlock", "wrong"
	})
	if err := wrong.Send(context.Background(), q); err == nil {
		t.Error("wrong password: Send succeeded")
	}
	if n := len(srv.messages()); n != 1 {
		t.Errorf("server has %d messages after the refused attempts, want 1", n)
	}
}

func TestSendStartTLSRequired(t *testing.T) {
	// tls: starttls against a server without STARTTLS must not fall back
	// to plain text.
	srv := startSMTPServer(t, serverOptions{})
	snd := senderFor(t, srv, func(c *SMTPConfig) { c.TLS = TLSStartTLS })
	if err := snd.Send(context.Background(), queuedLockMail(t, 20)); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("err = %v, want a STARTTLS error", err)
	}
	if n := len(srv.messages()); n != 0 {
		t.Errorf("server got %d messages in clear, want 0", n)
	}
}

func TestSendImplicitTLS(t *testing.T) {
	srv := startSMTPServer(t, serverOptions{implicitTLS: true})
	q := queuedLockMail(t, 21)
	snd := senderFor(t, srv, func(c *SMTPConfig) { c.TLS, c.TLSSkipVerify = TLSImplicit, true })
	if err := snd.Send(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	msgs := srv.messages()
	if len(msgs) != 1 || !msgs[0].TLS {
		t.Fatalf("server got %+v, want one message over TLS", msgs)
	}
	checkDelivered(t, msgs[0], q)
}

func TestSendErrorClasses(t *testing.T) {
	srv := startSMTPServer(t, serverOptions{failData: 1})
	snd := senderFor(t, srv, nil)
	err := snd.Send(context.Background(), queuedLockMail(t, 22))
	if err == nil || IsPermanent(err) || !strings.Contains(err.Error(), "451") {
		t.Errorf("451: err = %v, want a temporary error naming 451", err)
	}
	refuse := startSMTPServer(t, serverOptions{rcptErr: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}})
	err = senderFor(t, refuse, nil).Send(context.Background(), queuedLockMail(t, 23))
	if !IsPermanent(err) {
		t.Errorf("550: err = %v, want a permanent error", err)
	}
	// Nobody listens: temporary.
	closed := &smtpServer{Host: "127.0.0.1", Port: 1}
	err = senderFor(t, closed, func(c *SMTPConfig) { c.Timeout = time.Second }).Send(context.Background(), queuedLockMail(t, 24))
	if err == nil || IsPermanent(err) {
		t.Errorf("connection refused: err = %v, want a temporary error", err)
	}
}

// TestMessageIDStable: the same outbox record always gets the same
// Message-ID and Date; another record or another database (other creation
// time) gets another.
func TestMessageIDStable(t *testing.T) {
	srv := &smtpServer{Host: "127.0.0.1", Port: 25}
	snd := senderFor(t, srv, nil)
	q := queuedLockMail(t, 5)
	header := func(q mail.Queued) netmail.Header {
		var b bytes.Buffer
		if err := snd.WriteMessage(&b, q); err != nil {
			t.Fatal(err)
		}
		return parseMail(t, b.Bytes()).Header
	}
	h1, h2 := header(q), header(q)
	if h1.Get("Message-Id") == "" || h1.Get("Message-Id") != h2.Get("Message-Id") || h1.Get("Date") != h2.Get("Date") {
		t.Errorf("resend headers differ: %q %q / %q %q", h1.Get("Message-Id"), h2.Get("Message-Id"), h1.Get("Date"), h2.Get("Date"))
	}
	other := q
	other.ID = 6
	fresh := q
	fresh.CreatedAt = q.CreatedAt.Add(time.Second)
	if header(other).Get("Message-Id") == h1.Get("Message-Id") || header(fresh).Get("Message-Id") == h1.Get("Message-Id") {
		t.Error("different outbox records share a Message-ID")
	}
}
