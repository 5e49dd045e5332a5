-- Lock fields that used to be markers in the note: the time a lock ends by
-- itself (expires_at, Unix microseconds), staff-only unlock after review,
-- and inbound protection (a blackhole protecting a victim). Locks written
-- before get the fields from their note markers
-- ("[inbound-protection] expires 2026-11-25T13:00:00Z: ...", "[staff-unlock-only]").

-- +goose Up
ALTER TABLE locks ADD COLUMN expires_at INTEGER;
ALTER TABLE locks ADD COLUMN staff_unlock_only INTEGER NOT NULL DEFAULT 0;
ALTER TABLE locks ADD COLUMN inbound_protection INTEGER NOT NULL DEFAULT 0;
UPDATE locks SET inbound_protection = 1,
    expires_at = CAST(strftime('%s', substr(note, 30, 20)) AS INTEGER) * 1000000
    WHERE substr(note, 1, 29) = '[inbound-protection] expires ';
UPDATE locks SET inbound_protection = 1 WHERE instr(note, '[inbound-protection]') > 0;
UPDATE locks SET staff_unlock_only = 1 WHERE instr(note, '[staff-unlock-only]') > 0;
CREATE INDEX locks_expires ON locks(expires_at) WHERE expires_at IS NOT NULL;

-- +goose Down
DROP INDEX locks_expires;
ALTER TABLE locks DROP COLUMN inbound_protection;
ALTER TABLE locks DROP COLUMN staff_unlock_only;
ALTER TABLE locks DROP COLUMN expires_at;
