-- The shared kernel's tables, in every service's own database.

-- Transactional outbox: rows are written in the transaction of the state change that caused
-- them and deleted by the relay once the broker acknowledged them. `id` follows insertion
-- order; one aggregate's events are written under that aggregate's row lock, so their ids
-- follow commit order and the relay (one leader per service) publishes them in that order.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    event_id    uuid        NOT NULL,
    topic       text        NOT NULL,
    key         bytea,
    value       bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Idempotent consumer: one row per (consumer group, CloudEvent id), inserted in the same
-- transaction as the handler's writes, so an event is applied once or not at all.
CREATE TABLE processed_events (
    consumer      text        NOT NULL,
    event_id      uuid        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX processed_events_processed_at ON processed_events (processed_at);
