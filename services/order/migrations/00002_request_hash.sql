-- +goose Up
-- SHA-256 of the canonical CreateOrder request that used request_id
-- (order.Draft.Fingerprint): a retry with the same key must carry the same
-- request, else it is refused. NULL for orders without a request_id and for
-- those created before this column.
ALTER TABLE orders ADD COLUMN request_hash BINARY(32) NULL;

-- +goose Down
ALTER TABLE orders DROP COLUMN request_hash;
