-- Webhooks for agencies without Kafka: subscriptions, and one delivery per subscription and
-- event (the primary key: an event Kafka delivers again is not queued twice).

CREATE TABLE webhook_subscriptions (
    id               text        PRIMARY KEY,
    agency           text        NOT NULL,
    callback_url     text        NOT NULL,
    bearer_token     text        NOT NULL,
    -- Empty: every event type on the agency's topic.
    event_types      text[]      NOT NULL DEFAULT '{}',
    status           text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    disabled_reason  text,
    disabled_at      timestamptz,
    created_at       timestamptz NOT NULL
);
CREATE INDEX webhook_subscriptions_agency ON webhook_subscriptions (agency, created_at);

-- No foreign key to the subscription: a deleted subscription's deliveries stay, cancelled.
CREATE TABLE webhook_deliveries (
    subscription_id   text        NOT NULL,
    event_id          uuid        NOT NULL,
    agency            text        NOT NULL,
    event_type        text        NOT NULL,
    topic             text        NOT NULL,
    cloudevent        text        NOT NULL,  -- the exact JSON that is POSTed, as it was on Kafka
    status            text        NOT NULL DEFAULT 'pending'
                                  CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
    attempts          integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When it is due; while a worker holds it, the end of that worker's lease.
    next_attempt_at   timestamptz,
    -- The current claim: only the worker holding it records the attempt's outcome.
    claim             uuid,
    last_status_code  integer,
    last_error        text,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    PRIMARY KEY (subscription_id, event_id),
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
-- The workers' queue: pending deliveries by due time.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- A subscription's deliveries, newest first (the API).
CREATE INDEX webhook_deliveries_of_subscription ON webhook_deliveries (subscription_id, created_at DESC);
