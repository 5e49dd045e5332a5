-- The policy's circuit breaker, so that a restart does not silently turn
-- automatic locking back on after a trip: one row, written when it opens
-- and when staff close it.

-- +goose Up
CREATE TABLE policy_breaker (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    open       INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    since      BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE policy_breaker;
