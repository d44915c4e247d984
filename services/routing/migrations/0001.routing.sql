-- Routing's own tables: receiving organisations and routing rules (reference data, seeded at
-- start with INSERT ... ON CONFLICT DO NOTHING, then edited through the API), one case per
-- routed help request, one row per warm referral, and the audit trail of handover reads.

CREATE TABLE organisations (
    code            text    PRIMARY KEY CHECK (code ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    name            text    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind            text    NOT NULL CHECK (kind IN ('agency', 'partner')),
    municipality    text,
    -- Hours the organisation has to bring a referral to a final status; NULL: the default.
    response_hours  integer CHECK (response_hours BETWEEN 1 AND 2160)
);

-- Questions of `theme` (and `subtheme`; NULL: the theme's default), in `municipality` if given
-- (NULL: national), go to `organisation` (NULL: helped at the desk). One rule per key.
CREATE TABLE routing_rules (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    theme         text NOT NULL,
    subtheme      text,
    municipality  text,
    organisation  text REFERENCES organisations (code),
    CONSTRAINT routing_rules_key UNIQUE NULLS NOT DISTINCT (theme, subtheme, municipality)
);

-- One per routed help request: the primary key makes a second routing of it impossible.
CREATE TABLE routing_cases (
    help_request_id  text        PRIMARY KEY,
    library          text        NOT NULL,
    decisions        jsonb       NOT NULL,
    routed_at        timestamptz NOT NULL,
    -- The visitor's personal data as intake sealed it, opened only for a handover with the
    -- data key fetched from intake; NULL without consent and once erased.
    sealed           text,
    erased_at        timestamptz
);

CREATE TABLE referrals (
    referral_id         text        PRIMARY KEY,
    help_request_id     text        NOT NULL REFERENCES routing_cases (help_request_id),
    question_index      integer     NOT NULL CHECK (question_index >= 0),
    agency              text        NOT NULL,
    library             text        NOT NULL,
    theme               text        NOT NULL,
    subtheme            text,
    contact_preference  text        CHECK (contact_preference IN ('phone', 'email', 'do_not_contact')),
    sent_at             timestamptz NOT NULL,
    status              text        NOT NULL CHECK (status IN (
                            'sent', 'accepted', 'needs_client_action', 'got_help', 'could_not_contact',
                            'not_eligible', 'no_capacity', 'no_longer_interested', 'referred_elsewhere')),
    -- Increases by one per status change: the sequence of ReferralStatusChanged.
    version             integer     NOT NULL CHECK (version >= 1),
    -- The service level: the deadline (NULL once closed), paused while the visitor has to act.
    due_at              timestamptz,
    paused_at           timestamptz,
    overdue_notified    boolean     NOT NULL DEFAULT false,
    -- The status changes, read whole with the referral: [{status, reason, at, by}, ...].
    history             jsonb       NOT NULL DEFAULT '[]',
    UNIQUE (help_request_id, question_index),
    CHECK (paused_at IS NULL OR status = 'needs_client_action'),
    CHECK (due_at IS NULL OR status IN ('sent', 'accepted', 'needs_client_action'))
);
-- The service-level watch: referrals still on the clock and not reported overdue, by deadline.
CREATE INDEX referrals_due ON referrals (due_at)
    WHERE due_at IS NOT NULL AND paused_at IS NULL AND NOT overdue_notified;
-- An organisation's referrals, newest first.
CREATE INDEX referrals_agency_sent_at ON referrals (agency, sent_at DESC);

-- Audit trail: every read of a handover, who and when (reported as ReferralHandoverRead).
CREATE TABLE referral_reads (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    referral_id    text        NOT NULL REFERENCES referrals (referral_id),
    read_at        timestamptz NOT NULL,
    organisation   text        NOT NULL,
    credential_id  text        NOT NULL
);
CREATE INDEX referral_reads_referral ON referral_reads (referral_id, read_at);
