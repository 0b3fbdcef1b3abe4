-- +goose Up
-- Stuck sagas: PENDING orders by their last change (ListStuckSagas and the
-- periodic sagasuite.saga.stuck count, which reads this index only).
CREATE INDEX idx_orders_status_updated ON orders (status, updated_at);

-- +goose Down
DROP INDEX idx_orders_status_updated ON orders;
