-- +goose Up
-- Intent → gateway call → outcome: a payment row is CHARGE_PENDING (or
-- REFUND_PENDING) from the committed intent until the gateway's answer is
-- recorded. The sweeper finds intents whose lease ran out (their handler
-- died) through idx_payments_pending and claims them by moving lease_until.
ALTER TABLE payments DROP CONSTRAINT chk_payments_status;
ALTER TABLE payments ADD CONSTRAINT chk_payments_status
    CHECK (status IN ('CHARGE_PENDING', 'CAPTURED', 'FAILED', 'REFUND_PENDING', 'REFUNDED', 'CANCELLED'));
ALTER TABLE payments ADD COLUMN payment_token VARCHAR(256) NULL;
ALTER TABLE payments ADD COLUMN cancel_causation_id CHAR(36) NULL;
ALTER TABLE payments ADD COLUMN refund_reason VARCHAR(32) NULL;
ALTER TABLE payments ADD COLUMN refund_causation_id CHAR(36) NULL;
ALTER TABLE payments ADD COLUMN lease_until DATETIME(6) NULL;
CREATE INDEX idx_payments_pending ON payments (status, lease_until);

-- +goose Down
DROP INDEX idx_payments_pending ON payments;
ALTER TABLE payments DROP COLUMN lease_until;
ALTER TABLE payments DROP COLUMN refund_causation_id;
ALTER TABLE payments DROP COLUMN refund_reason;
ALTER TABLE payments DROP COLUMN cancel_causation_id;
ALTER TABLE payments DROP COLUMN payment_token;
ALTER TABLE payments DROP CONSTRAINT chk_payments_status;
ALTER TABLE payments ADD CONSTRAINT chk_payments_status
    CHECK (status IN ('CAPTURED', 'FAILED', 'REFUNDED', 'CANCELLED'));
