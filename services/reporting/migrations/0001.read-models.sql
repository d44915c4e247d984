-- Reporting's read models, in versions. Every read-model table carries `version`: the active
-- version answers the API (`active_version`); a rebuild fills a new version from the start of
-- every topic and replaces the active one in one transaction. No table holds personal data:
-- ids, classifications, counts, amounts and moments only.

-- The versions: one is active; at most one rebuild is under way ('building' while it replays,
-- 'live' once it has caught up and the live consumer writes to it too); the rows of a replaced
-- ('retired') or abandoned ('failed') version are deleted, then it is marked `dropped`.
CREATE TABLE read_model_versions (
    version      int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state        text        NOT NULL CHECK (state IN ('building', 'live', 'active', 'retired', 'failed')),
    dropped      boolean     NOT NULL DEFAULT false CHECK (NOT dropped OR state IN ('retired', 'failed')),
    rebuilt      boolean     NOT NULL DEFAULT true,  -- false: built incrementally from the first start
    processed    bigint      NOT NULL DEFAULT 0 CHECK (processed >= 0),  -- records replayed
    total        bigint      NOT NULL DEFAULT 0 CHECK (total >= 0),      -- records to replay
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE UNIQUE INDEX read_model_versions_one_rebuild ON read_model_versions ((true)) WHERE state IN ('building', 'live');
CREATE UNIQUE INDEX read_model_versions_one_active ON read_model_versions ((true)) WHERE state = 'active';

INSERT INTO read_model_versions (state, rebuilt) VALUES ('active', false);

-- The one row readers use. The live consumer reads it FOR SHARE; the swap updates it, so a
-- swap waits for the live units of work in flight and they see the new version after it.
CREATE TABLE active_version (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version    int     NOT NULL REFERENCES read_model_versions
);
INSERT INTO active_version (version) SELECT version FROM read_model_versions;

-- Events a version holds that the live consumer may still deliver: every event a rebuild
-- replays, and every live event applied to a rebuild's version. The primary key makes each
-- version apply each event once, whoever (replay or live consumer, any instance) comes first.
-- After the swap the live consumer consumes (deletes) the marks of events it meets again;
-- marks of events it has processed already or that are older than the processed-events
-- retention are deleted right after the swap (one pass over the version: no index on time).
CREATE TABLE applied_events (
    version     int         NOT NULL,
    event_id    uuid        NOT NULL,
    event_time  timestamptz NOT NULL,
    PRIMARY KEY (version, event_id)
);

-- One row per question, as on the KB's registration form (no free text, no contact details).
CREATE TABLE question_rows (
    version           int  NOT NULL,
    help_request_id   text NOT NULL,
    question          int  NOT NULL CHECK (question >= 1),
    date              date NOT NULL,
    library           text NOT NULL,
    location          text NOT NULL,
    channel           text NOT NULL,
    category          text NOT NULL,
    theme             text NOT NULL,
    subtheme          text NOT NULL,
    help_given        text NOT NULL,
    duration_minutes  int,
    PRIMARY KEY (version, help_request_id, question)
);
CREATE INDEX question_rows_by_date ON question_rows (version, date);
CREATE INDEX question_rows_by_library ON question_rows (version, library, date);

-- How routing answered each question (its own table: the routing event may arrive first).
CREATE TABLE question_outcomes (
    version          int  NOT NULL,
    help_request_id  text NOT NULL,
    question         int  NOT NULL CHECK (question >= 1),
    outcome          text NOT NULL,
    referred_to      text NOT NULL,
    PRIMARY KEY (version, help_request_id, question)
);

-- Counters keyed by their dimensions, kept by additive upserts (n = n + excluded.n).
CREATE TABLE visit_counts (
    version  int    NOT NULL,
    month    text   NOT NULL,
    library  text   NOT NULL,
    channel  text   NOT NULL,
    n        bigint NOT NULL CHECK (n >= 0),
    PRIMARY KEY (version, month, library, channel)
);
CREATE INDEX visit_counts_by_library ON visit_counts (version, library);

CREATE TABLE question_counts (
    version   int    NOT NULL,
    month     text   NOT NULL,
    library   text   NOT NULL,
    location  text   NOT NULL,
    channel   text   NOT NULL,
    category  text   NOT NULL,
    theme     text   NOT NULL,
    subtheme  text   NOT NULL,
    n         bigint NOT NULL CHECK (n >= 0),
    PRIMARY KEY (version, month, library, location, channel, category, theme, subtheme)
);
CREATE INDEX question_counts_by_library ON question_counts (version, library, month);
CREATE INDEX question_counts_by_theme ON question_counts (version, theme);

CREATE TABLE help_given_counts (
    version  int    NOT NULL,
    month    text   NOT NULL,
    library  text   NOT NULL,
    help     text   NOT NULL,
    n        bigint NOT NULL CHECK (n >= 0),
    PRIMARY KEY (version, month, library, help)
);
CREATE INDEX help_given_counts_by_library ON help_given_counts (version, library);

CREATE TABLE outcome_counts (
    version       int    NOT NULL,
    month         text   NOT NULL,
    library       text   NOT NULL,
    organisation  text   NOT NULL,
    outcome       text   NOT NULL,
    n             bigint NOT NULL CHECK (n >= 0),
    PRIMARY KEY (version, month, library, organisation, outcome)
);
CREATE INDEX outcome_counts_by_library ON outcome_counts (version, library);
CREATE INDEX outcome_counts_by_organisation ON outcome_counts (version, organisation);

-- Referrals: the status with the highest sequence, when it was accepted, the overdue flag.
CREATE TABLE referrals (
    version      int     NOT NULL,
    referral_id  text    NOT NULL,
    agency       text    NOT NULL,
    library      text    NOT NULL,
    theme        text,
    sent_at      timestamptz,
    status       text,
    sequence     int     CHECK (sequence >= 1),
    accepted_at  timestamptz,
    overdue      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (version, referral_id),
    CHECK ((status IS NULL) = (sequence IS NULL))
);
CREATE INDEX referrals_by_agency ON referrals (version, agency);

-- IDO locations with the moment they were first registered (rollout coverage).
CREATE TABLE locations (
    version      int         NOT NULL,
    location_id  text        NOT NULL,
    library      text        NOT NULL,
    opened_at    timestamptz NOT NULL,
    PRIMARY KEY (version, location_id)
);

-- Course runs (known once scheduled) and the latest state of each enrolment.
CREATE TABLE course_runs (
    version           int  NOT NULL,
    run_id            text NOT NULL,
    library           text,
    course_type       text,
    capacity          int  CHECK (capacity >= 1),
    first_session_at  timestamptz,
    status            text CHECK (status IN ('scheduled', 'cancelled')),
    PRIMARY KEY (version, run_id)
);
CREATE INDEX course_runs_by_library ON course_runs (version, library);

CREATE TABLE enrolments (
    version        int  NOT NULL,
    run_id         text NOT NULL,
    enrolment_id   text NOT NULL,
    state          text NOT NULL
        CHECK (state IN ('enrolled', 'waitlisted', 'offered', 'offer_expired', 'cancelled', 'completed')),
    PRIMARY KEY (version, run_id, enrolment_id)
);

-- Per library: staff who completed each training (read whole).
CREATE TABLE readiness (
    version  int   NOT NULL,
    library  text  NOT NULL,
    trained  jsonb NOT NULL,
    PRIMARY KEY (version, library)
);

-- Subsidy: per application the amounts (euro cents), per tranche what was paid, per scheme its ceiling.
CREATE TABLE subsidies (
    version          int    NOT NULL,
    application_id   text   NOT NULL,
    scheme           text   NOT NULL,
    library          text   NOT NULL,
    requested_cents  bigint CHECK (requested_cents >= 0),
    granted_cents    bigint CHECK (granted_cents >= 0),
    extension_cents  bigint CHECK (extension_cents >= 0),
    status           text   CHECK (status IN ('granted', 'rejected')),
    PRIMARY KEY (version, application_id)
);
CREATE INDEX subsidies_by_scheme ON subsidies (version, scheme);

CREATE TABLE subsidy_payments (
    version         int    NOT NULL,
    application_id  text   NOT NULL,
    tranche         text   NOT NULL CHECK (tranche IN ('advance', 'final', 'extension')),
    amount_cents    bigint NOT NULL CHECK (amount_cents >= 0),
    PRIMARY KEY (version, application_id, tranche)
);

CREATE TABLE schemes (
    version               int    NOT NULL,
    scheme                text   NOT NULL,
    name                  text   NOT NULL,
    budget_ceiling_cents  bigint NOT NULL CHECK (budget_ceiling_cents >= 0),
    PRIMARY KEY (version, scheme)
);
