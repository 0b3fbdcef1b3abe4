-- +goose Up
-- One row per order: its charge (CAPTURED, FAILED, REFUNDED) or, when the
-- order was cancelled before any charge, a CANCELLED tombstone that makes a
-- late STOCK_RESERVED charge nothing. The row is the order's lock: every
-- handler reads it FOR UPDATE before it decides.
CREATE TABLE payments (
    order_id       CHAR(36)      NOT NULL PRIMARY KEY,
    payment_id     CHAR(36)      NULL,
    customer_id    CHAR(36)      NOT NULL,
    amount_minor   BIGINT        NOT NULL DEFAULT 0,
    currency       CHAR(3)       NOT NULL DEFAULT '',
    status         VARCHAR(16)   NOT NULL,
    charge_id      VARCHAR(64)   NULL,
    failure_reason VARCHAR(32)   NULL,
    decline_code   VARCHAR(64)   NULL,
    failure_detail VARCHAR(1024) NULL,
    causation_id   CHAR(36)      NOT NULL,
    created_at     DATETIME(6)   NOT NULL,
    updated_at     DATETIME(6)   NOT NULL,
    UNIQUE KEY uq_payments_payment (payment_id),
    KEY idx_payments_customer (customer_id, created_at, order_id),
    CONSTRAINT chk_payments_status CHECK (status IN ('CAPTURED', 'FAILED', 'REFUNDED', 'CANCELLED')),
    CONSTRAINT chk_payments_amount CHECK (amount_minor >= 0),
    CONSTRAINT chk_payments_charged CHECK (status NOT IN ('CAPTURED', 'REFUNDED') OR charge_id IS NOT NULL),
    CONSTRAINT chk_payments_failed CHECK (status <> 'FAILED' OR failure_reason IS NOT NULL)
);

-- Money paid back. order_id is UNIQUE: a payment is refunded at most once,
-- whatever the code does.
CREATE TABLE refunds (
    refund_id         CHAR(36)    NOT NULL PRIMARY KEY,
    order_id          CHAR(36)    NOT NULL,
    amount_minor      BIGINT      NOT NULL,
    currency          CHAR(3)     NOT NULL,
    reason            VARCHAR(32) NOT NULL,
    gateway_refund_id VARCHAR(64) NOT NULL,
    causation_id      CHAR(36)    NOT NULL,
    created_at        DATETIME(6) NOT NULL,
    UNIQUE KEY uq_refunds_order (order_id),
    CONSTRAINT fk_refunds_payment FOREIGN KEY (order_id) REFERENCES payments (order_id),
    CONSTRAINT chk_refunds_amount CHECK (amount_minor >= 0),
    CONSTRAINT chk_refunds_reason CHECK (reason IN ('SHIPMENT_FAILED', 'ORDER_CANCELLED'))
);

-- +goose Down
DROP TABLE refunds;
DROP TABLE payments;
