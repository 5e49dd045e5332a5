// Package notify owns the customer emails of padlock: the templates that
// turn a lock event into a mail, the SMTP delivery and the worker that
// drains the transactional outbox. The seed promises "If we lock a product,
// we always send an email explaining the situation"; this package writes
// that email and makes sure it leaves, once.
//
// Rendering: Renderer.Render(Event) returns a mail.Message with a subject
// carrying the Locking ID ("[L0029DB12] Your server web1 (203.0.113.10) has
// been locked: network scan"), a text part, an HTML part and, for warnings
// and locks, the evidence files as attachments. Each language is a
// directory of templates (built-in: en, de; embedded with embed.FS):
// messages.tmpl holds the wording as named snippets (reasons, evidence,
// traceroute check, whitelist, KVM, unlock rules), subjects.tmpl the
// subjects, and <kind>.txt.tmpl (text/template) and <kind>.html.tmpl
// (html/template) arrange the same snippets, so both parts say the same.
// Files in RendererConfig.Dir/<lang>/ override the built-in file of the same
// name or add a language (which must then be complete). The customer's
// language is used when templates exist for it ("de-AT" finds "de"),
// English otherwise. NewRenderer renders every kind and reason once, so a
// broken override stops the start instead of a customer's mail.
//
// A notice (KindNotice, policy action notify) is the one mail without a
// lock: it tells the customer what was seen from their product, attaches
// the evidence and says that nothing is locked yet; it has no Locking ID.
//
// Delivery: the lock manager renders the mail and queues it in the store's
// outbox in the same transaction as the change that causes it. The worker
// (Component: New, Start, Stop, Kick) claims due mails with a lease, sends
// each over SMTP (github.com/wneessen/go-mail; none, STARTTLS or implicit
// TLS; AUTH PLAIN) and marks it sent, or failed with the next attempt after
// an exponential backoff capped at retry_max. A mail is never dropped. Its
// Message-ID is derived from the outbox record, so if padlock dies after the
// server accepted a mail but before it was marked sent, the second delivery
// carries the same Message-ID and mail clients show one mail.
//
// Without an SMTP host (the demo) the worker claims nothing: mails stay in
// the outbox untouched, unsent and without attempts, and the admin area
// shows them ("kept"). Configuring SMTP later sends them. We chose not to
// mark them in the store, so the outbox needs no extra state and nothing is
// lost when SMTP is switched on.
//
// Imports: the standard library, padlock/internal/mail, go-mail (only here
// in padlock) and the Prometheus client. It must not import the store, the
// lock manager or the web packages: it declares the Outbox interface it
// needs and the store implements it (the tests run the worker on the real
// SQLite store to keep the two in step).
package notify
