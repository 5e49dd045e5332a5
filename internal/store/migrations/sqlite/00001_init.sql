-- padlock schema, SQLite dialect. Times are Unix microseconds (UTC);
-- optional references are 0 when absent unless they are foreign keys.

-- +goose Up
CREATE TABLE customers (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    name      TEXT NOT NULL,
    email     TEXT NOT NULL,
    email_key TEXT NOT NULL CONSTRAINT customers_email_key UNIQUE,
    language  TEXT NOT NULL DEFAULT ''
);
CREATE TABLE servers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    name        TEXT NOT NULL CONSTRAINT servers_name_key UNIQUE,
    macs        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX servers_customer ON servers(customer_id);
CREATE TABLE storage_boxes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    name        TEXT NOT NULL CONSTRAINT storage_boxes_name_key UNIQUE,
    host        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX storage_boxes_customer ON storage_boxes(customer_id);
-- addresses holds every prefix of the inventory: a server's (server_id set)
-- and standalone IPs and subnets (server_id NULL).
CREATE TABLE addresses (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    server_id   INTEGER REFERENCES servers(id) ON DELETE CASCADE,
    prefix      TEXT NOT NULL CONSTRAINT addresses_prefix_key UNIQUE,
    note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX addresses_server ON addresses(server_id);
CREATE INDEX addresses_customer ON addresses(customer_id);

CREATE TABLE locks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    locking_id      TEXT NOT NULL CONSTRAINT locks_locking_id_key UNIQUE,
    customer_id     INTEGER NOT NULL REFERENCES customers(id),
    reason          TEXT NOT NULL,
    state           TEXT NOT NULL,
    scope_kind      TEXT NOT NULL,
    scope           TEXT NOT NULL,
    scope_key       TEXT NOT NULL,
    storage_box_id  INTEGER NOT NULL DEFAULT 0,
    note            TEXT NOT NULL DEFAULT '',
    finding_id      INTEGER NOT NULL DEFAULT 0,
    warn_until      INTEGER,
    locked_at       INTEGER,
    unlocked_at     INTEGER,
    probation_until INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    created_by      TEXT NOT NULL
);
CREATE INDEX locks_state ON locks(state);
CREATE INDEX locks_customer ON locks(customer_id, id);
CREATE INDEX locks_recurrence ON locks(customer_id, scope_key, reason, state);
CREATE TABLE lock_prefixes (
    lock_id INTEGER NOT NULL REFERENCES locks(id) ON DELETE CASCADE,
    prefix  TEXT NOT NULL,
    PRIMARY KEY (lock_id, prefix)
);
CREATE INDEX lock_prefixes_prefix ON lock_prefixes(prefix);
CREATE TABLE whitelist (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    lock_id    INTEGER NOT NULL REFERENCES locks(id) ON DELETE CASCADE,
    ip         TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    removed_at INTEGER,
    created_by TEXT NOT NULL
);
CREATE INDEX whitelist_lock ON whitelist(lock_id);
CREATE INDEX whitelist_active ON whitelist(expires_at) WHERE removed_at IS NULL;
CREATE TABLE unlock_requests (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    lock_id     INTEGER NOT NULL REFERENCES locks(id) ON DELETE CASCADE,
    locking_id  TEXT NOT NULL,
    customer_id INTEGER NOT NULL,
    message     TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    decided_at  INTEGER,
    decided_by  TEXT NOT NULL DEFAULT '',
    note        TEXT NOT NULL DEFAULT ''
);
-- One open unlock request per lock, whatever the application does.
CREATE UNIQUE INDEX unlock_requests_one_open ON unlock_requests(lock_id) WHERE state = 'open';
CREATE INDEX unlock_requests_customer ON unlock_requests(customer_id, id);

CREATE TABLE tickets (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id  INTEGER NOT NULL REFERENCES customers(id),
    kind         TEXT NOT NULL,
    lock_id      INTEGER NOT NULL DEFAULT 0,
    product_type TEXT NOT NULL DEFAULT '',
    product_id   INTEGER NOT NULL DEFAULT 0,
    subject      TEXT NOT NULL,
    state        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX tickets_customer ON tickets(customer_id, id);
CREATE TABLE ticket_messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id   INTEGER NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    author_role TEXT NOT NULL,
    author      TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX ticket_messages_ticket ON ticket_messages(ticket_id, id);

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    actor_role  TEXT NOT NULL,
    action      TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id   INTEGER NOT NULL,
    lock_id     INTEGER NOT NULL DEFAULT 0,
    customer_id INTEGER NOT NULL DEFAULT 0,
    before      TEXT NOT NULL DEFAULT '',
    after       TEXT NOT NULL DEFAULT '',
    note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_lock ON audit_events(lock_id, id);
CREATE INDEX audit_customer ON audit_events(customer_id, id);
CREATE INDEX audit_at ON audit_events(at);
-- The audit log is append-only.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL DEFAULT '',
    hash         TEXT NOT NULL CONSTRAINT api_tokens_hash_key UNIQUE,
    role         TEXT NOT NULL,
    customer_id  INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE TABLE idempotency_keys (
    scope      TEXT NOT NULL,
    key        TEXT NOT NULL,
    hash       TEXT NOT NULL,
    lock_id    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (scope, key)
);

CREATE TABLE findings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    internal_ip TEXT NOT NULL,
    state       TEXT NOT NULL,
    customer_id INTEGER NOT NULL DEFAULT 0,
    lock_id     INTEGER NOT NULL DEFAULT 0,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    detail      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
-- One open case per internal IP and kind.
CREATE UNIQUE INDEX findings_one_open ON findings(internal_ip, kind) WHERE state = 'open';
CREATE INDEX findings_ip ON findings(internal_ip, id);
CREATE TABLE finding_evidence (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    finding_id   INTEGER NOT NULL REFERENCES findings(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    data         BLOB NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX finding_evidence_finding ON finding_evidence(finding_id, id);

CREATE TABLE mails (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    to_addr      TEXT NOT NULL,
    subject      TEXT NOT NULL,
    text_body    TEXT NOT NULL,
    html_body    TEXT NOT NULL DEFAULT '',
    kind         TEXT NOT NULL DEFAULT '',
    lock_id      INTEGER NOT NULL DEFAULT 0,
    customer_id  INTEGER NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    next_attempt INTEGER NOT NULL,
    lease_until  INTEGER NOT NULL DEFAULT 0,
    sent_at      INTEGER,
    last_error   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX mails_due ON mails(next_attempt) WHERE sent_at IS NULL;
CREATE INDEX mails_lock ON mails(lock_id, id);
CREATE INDEX mails_customer ON mails(customer_id, id);
CREATE TABLE mail_attachments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    mail_id      INTEGER NOT NULL REFERENCES mails(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    data         BLOB NOT NULL
);
CREATE INDEX mail_attachments_mail ON mail_attachments(mail_id);

-- +goose Down
DROP TABLE mail_attachments;
DROP TABLE mails;
DROP TABLE finding_evidence;
DROP TABLE findings;
DROP TABLE idempotency_keys;
DROP TABLE api_tokens;
DROP TABLE audit_events;
DROP TABLE ticket_messages;
DROP TABLE tickets;
DROP TABLE unlock_requests;
DROP TABLE whitelist;
DROP TABLE lock_prefixes;
DROP TABLE locks;
DROP TABLE addresses;
DROP TABLE storage_boxes;
DROP TABLE servers;
DROP TABLE customers;
