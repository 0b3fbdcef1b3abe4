-- +goose Up
-- The catalog: one row per SKU, with the price orders must quote.
CREATE TABLE products (
    sku              VARCHAR(64)  NOT NULL PRIMARY KEY,
    name             VARCHAR(200) NOT NULL,
    unit_price_minor BIGINT       NOT NULL,
    currency         CHAR(3)      NOT NULL,
    created_at       DATETIME(6)  NOT NULL,
    updated_at       DATETIME(6)  NOT NULL,
    CONSTRAINT chk_products_price CHECK (unit_price_minor >= 0)
);

-- Stock levels per SKU. The invariant is enforced by the database too, so no
-- code path (or hand-written UPDATE) can leave a row that does not add up.
CREATE TABLE stock (
    sku        VARCHAR(64) NOT NULL PRIMARY KEY,
    available  BIGINT      NOT NULL DEFAULT 0,
    reserved   BIGINT      NOT NULL DEFAULT 0,
    sold       BIGINT      NOT NULL DEFAULT 0,
    added      BIGINT      NOT NULL DEFAULT 0,
    restored   BIGINT      NOT NULL DEFAULT 0,
    updated_at DATETIME(6) NOT NULL,
    CONSTRAINT fk_stock_product FOREIGN KEY (sku) REFERENCES products (sku),
    CONSTRAINT chk_stock_non_negative CHECK (available >= 0 AND reserved >= 0 AND sold >= 0 AND added >= 0 AND restored >= 0),
    CONSTRAINT chk_stock_invariant CHECK (added = available + reserved + sold - restored)
);

-- One reservation per order (also a REJECTED decision or a CANCELLED
-- tombstone), with the data later events carry forward.
CREATE TABLE reservations (
    order_id         CHAR(36)     NOT NULL PRIMARY KEY,
    reservation_id   CHAR(36)     NULL,
    customer_id      CHAR(36)     NOT NULL,
    status           VARCHAR(16)  NOT NULL,
    total_minor      BIGINT       NULL,
    currency         CHAR(3)      NULL,
    payment_token    VARCHAR(256) NULL,
    shipping_address JSON         NULL,
    created_at       DATETIME(6)  NOT NULL,
    updated_at       DATETIME(6)  NOT NULL,
    CONSTRAINT chk_reservations_status CHECK (status IN ('RESERVED', 'DEDUCTED', 'RELEASED', 'RESTORED', 'REJECTED', 'CANCELLED'))
);

CREATE TABLE reservation_lines (
    order_id         CHAR(36)    NOT NULL,
    line_no          INT         NOT NULL,
    sku              VARCHAR(64) NOT NULL,
    quantity         BIGINT      NOT NULL,
    unit_price_minor BIGINT      NOT NULL,
    PRIMARY KEY (order_id, line_no),
    CONSTRAINT fk_lines_reservation FOREIGN KEY (order_id) REFERENCES reservations (order_id),
    CONSTRAINT chk_lines_quantity CHECK (quantity > 0)
);

-- AddStock requests already applied, for idempotent retries.
CREATE TABLE stock_additions (
    request_id CHAR(36)    NOT NULL PRIMARY KEY,
    sku        VARCHAR(64) NOT NULL,
    quantity   BIGINT      NOT NULL,
    created_at DATETIME(6) NOT NULL
);

-- +goose Down
DROP TABLE stock_additions;
DROP TABLE reservation_lines;
DROP TABLE reservations;
DROP TABLE stock;
DROP TABLE products;
