-- +goose Up
-- One row per order; status moves PENDING -> COMPLETED | CANCELLED and never back.
CREATE TABLE orders (
    id                  CHAR(36)      NOT NULL PRIMARY KEY,
    customer_id         CHAR(36)      NOT NULL,
    request_id          CHAR(36)      NULL,
    status              VARCHAR(16)   NOT NULL,
    currency            CHAR(3)       NOT NULL,
    total_minor         BIGINT        NOT NULL,
    ship_name           VARCHAR(200)  NOT NULL,
    ship_line1          VARCHAR(200)  NOT NULL,
    ship_line2          VARCHAR(200)  NOT NULL DEFAULT '',
    ship_city           VARCHAR(100)  NOT NULL,
    ship_postal_code    VARCHAR(20)   NOT NULL DEFAULT '',
    ship_country_code   CHAR(2)       NOT NULL,
    -- Carried in ORDER_CREATED; an opaque processor token, never card data.
    payment_token       VARCHAR(256)  NOT NULL,
    cancel_reason       VARCHAR(32)   NULL,
    cancel_detail       VARCHAR(1024) NOT NULL DEFAULT '',
    deadline            DATETIME(6)   NOT NULL,
    created_at          DATETIME(6)   NOT NULL,
    updated_at          DATETIME(6)   NOT NULL,
    -- Counts stored changes; watchers compare it to notice one.
    version             BIGINT        NOT NULL DEFAULT 0,
    CONSTRAINT chk_orders_status CHECK (status IN ('PENDING', 'COMPLETED', 'CANCELLED')),
    CONSTRAINT chk_orders_total CHECK (total_minor >= 0),
    CONSTRAINT chk_orders_cancel CHECK ((status = 'CANCELLED') = (cancel_reason IS NOT NULL)),
    -- The deadline scan: PENDING orders by deadline.
    KEY idx_orders_status_deadline (status, deadline),
    -- ListOrders: a customer's orders, newest first.
    KEY idx_orders_customer_created (customer_id, created_at, id)
);

CREATE TABLE order_lines (
    order_id          CHAR(36)    NOT NULL,
    line_no           INT         NOT NULL,
    sku               VARCHAR(64) NOT NULL,
    quantity          INT         NOT NULL,
    unit_price_minor  BIGINT      NOT NULL,
    PRIMARY KEY (order_id, line_no),
    UNIQUE KEY uq_order_lines_sku (order_id, sku),
    CONSTRAINT fk_order_lines_order FOREIGN KEY (order_id) REFERENCES orders (id),
    CONSTRAINT chk_order_lines_quantity CHECK (quantity > 0),
    CONSTRAINT chk_order_lines_price CHECK (unit_price_minor >= 0)
);

-- The saga step history: every event about the order, in the order recorded.
CREATE TABLE order_steps (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id     CHAR(36)      NOT NULL,
    event_type   VARCHAR(32)   NOT NULL,
    event_id     CHAR(36)      NOT NULL,
    occurred_at  DATETIME(6)   NOT NULL,
    detail       VARCHAR(1024) NOT NULL DEFAULT '',
    recorded_at  DATETIME(6)   NOT NULL,
    UNIQUE KEY uq_order_steps_event (order_id, event_id),
    CONSTRAINT fk_order_steps_order FOREIGN KEY (order_id) REFERENCES orders (id)
);

-- +goose Down
DROP TABLE order_steps;
DROP TABLE order_lines;
DROP TABLE orders;
