-- +goose Up
-- ListOrders across customers (operators), newest first: one index per filter
-- shape, each in the list's order (created_at, id), so a page reads its rows
-- and no more. A customer's own list keeps idx_orders_customer_created.
CREATE INDEX idx_orders_created ON orders (created_at, id);
CREATE INDEX idx_orders_status_created ON orders (status, created_at, id);
CREATE INDEX idx_orders_reason_created ON orders (cancel_reason, created_at, id);

-- +goose Down
DROP INDEX idx_orders_reason_created ON orders;
DROP INDEX idx_orders_status_created ON orders;
DROP INDEX idx_orders_created ON orders;
