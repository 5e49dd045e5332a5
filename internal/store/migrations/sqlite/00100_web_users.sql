-- Web accounts of the client and admin areas: users with argon2id password
-- hashes, password reset tokens (SHA-256 of the secret, single use), login
-- attempts for rate limiting, and scs sessions.

-- +goose Up
CREATE TABLE web_users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT NOT NULL,
    email_key     TEXT NOT NULL CONSTRAINT web_users_email_key UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    customer_id   INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);
CREATE TABLE web_password_resets (
    hash       TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES web_users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE TABLE web_login_attempts (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    email_key TEXT NOT NULL,
    ip        TEXT NOT NULL,
    ok        INTEGER NOT NULL,
    at        INTEGER NOT NULL
);
CREATE INDEX web_login_attempts_email ON web_login_attempts(email_key, at);
CREATE INDEX web_login_attempts_ip ON web_login_attempts(ip, at);
CREATE TABLE web_sessions (
    token  TEXT PRIMARY KEY,
    data   BLOB NOT NULL,
    expiry INTEGER NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions(expiry);

-- +goose Down
DROP TABLE web_sessions;
DROP TABLE web_login_attempts;
DROP TABLE web_password_resets;
DROP TABLE web_users;
