-- +goose Up
-- One row the outbox relay rewrites, in its own commit, before it publishes a
-- batch: InnoDB makes a commit visible before its redo log is flushed, and
-- flushes the log in order, so once this commit returns every transaction
-- whose rows the relay read is durable too (see libs/outbox relay.go).
CREATE TABLE outbox_barrier (
    id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
    at DATETIME(6)      NOT NULL
);

-- +goose Down
DROP TABLE outbox_barrier;
