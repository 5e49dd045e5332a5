-- The enforcement method chosen for one lock (the policy's choice for an
-- inbound victim, say); empty means the reason's configured method. Locks
-- written before carry it as a note marker ("[method] bgp_blackhole.").

-- +goose Up
ALTER TABLE locks ADD COLUMN method TEXT NOT NULL DEFAULT '';
UPDATE locks SET method = trim(substring(note from '\[method\] ([^.]+)\.'))
    WHERE note ~ '\[method\] [^.]+\.';
UPDATE locks SET method = 'bgp_blackhole' WHERE method IN ('blackhole', 'rtbh');

-- +goose Down
ALTER TABLE locks DROP COLUMN method;
