-- Intake's tables: help requests (visits), the libraries that run an IDO, their IDO locations.

CREATE TABLE help_requests (
    id                       text PRIMARY KEY,
    library                  text        NOT NULL,
    registered_at            timestamptz NOT NULL,
    status                   text        NOT NULL CHECK (status IN ('received', 'routed', 'referred', 'closed')),
    themes                   text[]      NOT NULL,  -- of its questions, for the ?theme= filter
    request                  jsonb       NOT NULL,  -- the registration as sent (notes and contact removed on erasure)
    decisions                jsonb       NOT NULL DEFAULT '[]',
    referrals                jsonb       NOT NULL DEFAULT '[]',
    fingerprint              text        NOT NULL,  -- of the command: an Idempotency-Key reused for another body is a conflict
    data_key                 bytea,                 -- seals the personal data in events; destroyed on erasure
    personal_data_erased_at  timestamptz
);
-- A library's own list, newest first, paginated by (registered_at, id).
CREATE INDEX help_requests_listing ON help_requests (library, registered_at DESC, id DESC);
-- Retention: visits whose personal data is still there, oldest first.
CREATE INDEX help_requests_personal_data ON help_requests (registered_at) WHERE personal_data_erased_at IS NULL;

CREATE TABLE libraries (
    code   text PRIMARY KEY,
    name   text    NOT NULL,
    pilot  boolean NOT NULL DEFAULT false
);

CREATE TABLE locations (
    library        text        NOT NULL,
    code           text        NOT NULL,
    location       jsonb       NOT NULL,
    registered_at  timestamptz NOT NULL,
    PRIMARY KEY (library, code)
);
