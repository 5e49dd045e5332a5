-- Lock fields that used to be markers in the note: the time a lock ends by
-- itself (expires_at, Unix microseconds), staff-only unlock after review,
-- and inbound protection (a blackhole protecting a victim). Locks written
-- before get the fields from their note markers
-- ("[inbound-protection] expires 2026-11-25T13:00:00Z: ...", "[staff-unlock-only]").

-- +goose Up
ALTER TABLE locks ADD COLUMN expires_at BIGINT;
ALTER TABLE locks ADD COLUMN staff_unlock_only BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE locks ADD COLUMN inbound_protection BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE locks SET inbound_protection = TRUE,
    expires_at = CAST(EXTRACT(EPOCH FROM CAST(substr(note, 30, 20) AS timestamptz)) AS BIGINT) * 1000000
    WHERE substr(note, 1, 29) = '[inbound-protection] expires '
      AND substr(note, 30, 20) ~ '^[0-9]{4}-[0-1][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z$';
UPDATE locks SET inbound_protection = TRUE WHERE strpos(note, '[inbound-protection]') > 0;
UPDATE locks SET staff_unlock_only = TRUE WHERE strpos(note, '[staff-unlock-only]') > 0;
CREATE INDEX locks_expires ON locks(expires_at) WHERE expires_at IS NOT NULL;

-- +goose Down
DROP INDEX locks_expires;
ALTER TABLE locks DROP COLUMN inbound_protection;
ALTER TABLE locks DROP COLUMN staff_unlock_only;
ALTER TABLE locks DROP COLUMN expires_at;
