-- The enforcement method chosen for one lock (the policy's choice for an
-- inbound victim, say); empty means the reason's configured method.

-- +goose Up
ALTER TABLE locks ADD COLUMN method TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE locks DROP COLUMN method;
