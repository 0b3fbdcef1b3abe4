-- +goose Up
-- Poison rows: a row Kafka refuses permanently (too large, unknown topic,
-- invalid record) is retried `attempts` times, then parked (parked_at set,
-- last_error saying why) so the rows behind it go on. Parked rows stay unsent
-- until an operator un-parks them (sagactl outbox retry).
ALTER TABLE outbox
    ADD COLUMN attempts   INT UNSIGNED  NOT NULL DEFAULT 0,
    ADD COLUMN parked_at  DATETIME(6)   NULL,
    ADD COLUMN last_error VARCHAR(1024) NULL;
-- The relay reads "unsent and not parked, in id order"; listing parked rows
-- uses the same index with parked_at NOT NULL.
CREATE INDEX idx_outbox_pending ON outbox (sent_at, parked_at, id);
DROP INDEX idx_outbox_unsent ON outbox;

-- +goose Down
CREATE INDEX idx_outbox_unsent ON outbox (sent_at, id);
DROP INDEX idx_outbox_pending ON outbox;
ALTER TABLE outbox DROP COLUMN last_error, DROP COLUMN parked_at, DROP COLUMN attempts;
