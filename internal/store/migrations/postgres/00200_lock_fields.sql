-- The time a lock ends by itself (expires_at, Unix microseconds),
-- staff-only unlock after review, and inbound protection (a blackhole
-- protecting a victim).

-- +goose Up
ALTER TABLE locks ADD COLUMN expires_at BIGINT;
ALTER TABLE locks ADD COLUMN staff_unlock_only BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE locks ADD COLUMN inbound_protection BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX locks_expires ON locks(expires_at) WHERE expires_at IS NOT NULL;

-- +goose Down
DROP INDEX locks_expires;
ALTER TABLE locks DROP COLUMN inbound_protection;
ALTER TABLE locks DROP COLUMN staff_unlock_only;
ALTER TABLE locks DROP COLUMN expires_at;
