-- +goose Up
-- Events a state change causes, written in the same transaction; the relay
-- publishes unsent rows in id order and stamps sent_at.
CREATE TABLE outbox (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    event_id    VARCHAR(64)     NOT NULL,
    topic       VARCHAR(249)    NOT NULL,
    msg_key     VARCHAR(255)    NOT NULL,
    headers     BLOB            NOT NULL,
    payload     MEDIUMBLOB      NOT NULL,
    created_at  DATETIME(6)     NOT NULL,
    sent_at     DATETIME(6)     NULL,
    UNIQUE KEY uq_outbox_event (event_id),
    KEY idx_outbox_unsent (sent_at, id)
);

-- Events a consumer has applied, written in the same transaction as the effect.
CREATE TABLE inbox (
    consumer     VARCHAR(128) NOT NULL,
    event_id     VARCHAR(64)  NOT NULL,
    processed_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

-- +goose Down
DROP TABLE inbox;
DROP TABLE outbox;
