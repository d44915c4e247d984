-- Subsidy's tables. The kernel's `outbox` and `processed_events` come from the kernel migration.

-- A scheme (its terms, as data) and its budget: the ceiling and what grants and renewals have
-- reserved. A grant or renewal locks this row (FOR NO KEY UPDATE, so new applications, whose
-- foreign key only needs KEY SHARE, are not held up) and reserves under the ceiling.
CREATE TABLE schemes (
    code                  text        PRIMARY KEY,
    name                  text        NOT NULL,
    opens                 timestamptz NOT NULL,
    closes                timestamptz NOT NULL,
    rates                 jsonb       NOT NULL,  -- {"2019": "0.03", ...}: euros per inhabitant per year
    budget_ceiling_cents  bigint      NOT NULL CHECK (budget_ceiling_cents > 0),
    reserved_cents        bigint      NOT NULL DEFAULT 0 CHECK (reserved_cents >= 0),
    advance_percent       integer     NOT NULL CHECK (advance_percent BETWEEN 0 AND 100),
    conditions            text[]      NOT NULL,
    extension             jsonb,      -- {"year", "rate", "deadline"} or null
    CHECK (opens < closes),
    -- The ceiling is never exceeded.
    CHECK (reserved_cents <= budget_ceiling_cents)
);

-- One application per library per scheme; its id is "<scheme>:<library>".
CREATE TABLE applications (
    id                     text        PRIMARY KEY,
    scheme                 text        NOT NULL REFERENCES schemes (code),
    library                text        NOT NULL,
    inhabitants            integer     NOT NULL CHECK (inhabitants > 0),
    ido_opening_date       date        NOT NULL,
    planned_course_offers  integer     NOT NULL CHECK (planned_course_offers >= 0),
    contact_person         jsonb       NOT NULL,
    calculation            jsonb       NOT NULL,  -- the lines it was made with; a scheme change leaves them
    requested_cents        bigint      NOT NULL CHECK (requested_cents >= 0),
    status                 text        NOT NULL CHECK (status IN ('applied', 'granted', 'rejected')),
    granted_cents          bigint      CHECK (granted_cents > 0 AND granted_cents <= requested_cents),
    decision_reason        text,
    applied_at             timestamptz NOT NULL,
    renewal                jsonb,      -- {"year", "amount_cents", "signed_by", "signed_on"} or null
    UNIQUE (scheme, library),
    CHECK ((status = 'granted') = (granted_cents IS NOT NULL)),
    CHECK ((status = 'applied') = (decision_reason IS NULL)),
    CHECK (renewal IS NULL OR status = 'granted')
);
CREATE INDEX applications_library ON applications (library, applied_at DESC);
CREATE INDEX applications_applied_at ON applications (applied_at DESC);

-- The decision trail: who did what when. Every action happens once per application, and an
-- application gets one decision: granted or rejected, never both.
CREATE TABLE trail (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    application_id  text        NOT NULL REFERENCES applications (id),
    at              timestamptz NOT NULL,
    actor           text        NOT NULL,
    action          text        NOT NULL CHECK (action IN ('applied', 'granted', 'rejected', 'renewed')),
    detail          text        NOT NULL,
    UNIQUE (application_id, action)
);
CREATE UNIQUE INDEX trail_one_decision ON trail (application_id) WHERE action IN ('granted', 'rejected');

-- Tranches paid: each tranche of an application once.
CREATE TABLE payments (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    application_id  text        NOT NULL REFERENCES applications (id),
    tranche         text        NOT NULL CHECK (tranche IN ('advance', 'final', 'extension')),
    amount_cents    bigint      NOT NULL CHECK (amount_cents > 0),
    paid_at         timestamptz NOT NULL,
    UNIQUE (application_id, tranche)
);

-- Per library: when it first met each payment condition (seen in other services' events).
-- A grant and a condition event both lock this row first, so a final tranche is never missed
-- (write skew) nor paid twice.
CREATE TABLE library_conditions (
    library                  text        PRIMARY KEY,
    visitor_registration_at  timestamptz,
    course_offers_at         timestamptz
);
