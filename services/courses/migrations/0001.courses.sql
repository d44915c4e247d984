-- courses: the catalogue, runs at IDO locations, enrolments with a first-in-first-out waitlist
-- and seat offers, the teacher register, staff readiness and course advice from the desk.
-- A run's row is its aggregate's lock: every change to a run or its enrolments first takes
-- `SELECT ... FROM course_runs WHERE id = $1 FOR UPDATE`, so changes to one run are serial
-- across instances; the constraints below hold even if that rule were broken.

-- For the exclusion constraint on (teacher, time range) below; trusted, so the database owner may create it.
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- Course formats: the defaults are seeded at start (only if missing), then KB staff maintain them.
CREATE TABLE course_types (
    code                        text    PRIMARY KEY CHECK (code ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    name                        text    NOT NULL,
    kind                        text    NOT NULL CHECK (kind IN ('digisterker', 'klik_en_tik', 'staff_training')),
    sessions                    integer NOT NULL CHECK (sessions >= 1),
    session_minutes             integer NOT NULL CHECK (session_minutes >= 15),
    max_participants            integer NOT NULL CHECK (max_participants >= 1),
    certified_teacher_required  boolean NOT NULL DEFAULT false,
    intake_first                boolean NOT NULL DEFAULT false,
    sessions_to_complete        integer NOT NULL CHECK (sessions_to_complete >= 1)
);

-- The certification register, kept by KB staff.
CREATE TABLE teachers (
    id             text   PRIMARY KEY,
    name           text   NOT NULL,
    certified_for  text[] NOT NULL DEFAULT '{}'
);

-- IDO locations as intake announced them (IdoLocationRegistered); the newest wins.
CREATE TABLE locations (
    id            text PRIMARY KEY,  -- '<library>:<code>', intake's location id
    library       text NOT NULL,
    code          text NOT NULL,
    name          text,
    postcode      text NOT NULL,
    municipality  text,
    UNIQUE (library, code)
);

CREATE TABLE course_runs (
    id                      text        PRIMARY KEY,
    library                 text        NOT NULL,
    course_type             text        NOT NULL REFERENCES course_types (code),
    location                text        NOT NULL,
    postcode                text        NOT NULL CHECK (postcode ~ '^[1-9][0-9]{3}'),
    -- the 4-digit postcode area: the public search sorts on its distance to the searcher's
    postcode_area           integer     NOT NULL GENERATED ALWAYS AS (substr(postcode, 1, 4)::integer) STORED,
    teacher                 text,
    capacity                integer     NOT NULL CHECK (capacity >= 1),
    seats_taken             integer     NOT NULL DEFAULT 0,  -- enrolled + offered
    next_position           integer     NOT NULL DEFAULT 0 CHECK (next_position >= 0),  -- last arrival number
    status                  text        NOT NULL DEFAULT 'scheduled' CHECK (status IN ('scheduled', 'cancelled')),
    first_session_at        timestamptz NOT NULL,
    last_session_ends_at    timestamptz NOT NULL,
    scheduled_at            timestamptz NOT NULL,
    attendance_recorded_at  timestamptz,
    participants_erased_at  timestamptz,
    CONSTRAINT never_overbooked CHECK (seats_taken BETWEEN 0 AND capacity),
    CONSTRAINT sessions_in_order CHECK (first_session_at < last_session_ends_at),
    FOREIGN KEY (library, location) REFERENCES locations (library, code)
);
CREATE INDEX course_runs_upcoming ON course_runs (first_session_at) WHERE status = 'scheduled';
CREATE INDEX course_runs_upcoming_by_type ON course_runs (course_type, first_session_at) WHERE status = 'scheduled';
CREATE INDEX course_runs_upcoming_of_library ON course_runs (library, course_type, first_session_at)
    WHERE status = 'scheduled';
CREATE INDEX course_runs_to_erase ON course_runs (last_session_ends_at) WHERE participants_erased_at IS NULL;

-- A run's sessions, numbered in the order the library gave them. The run's teacher is copied
-- here so that PostgreSQL itself refuses a teacher in two places at once, also when two
-- instances schedule overlapping runs for one teacher at the same moment.
CREATE TABLE course_sessions (
    run_id         text        NOT NULL REFERENCES course_runs (id),
    number         integer     NOT NULL CHECK (number >= 1),
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz NOT NULL,
    teacher        text,
    run_scheduled  boolean     NOT NULL DEFAULT true,  -- false once the run is cancelled
    PRIMARY KEY (run_id, number),
    CHECK (starts_at < ends_at),
    CONSTRAINT teacher_in_one_place EXCLUDE USING gist (teacher WITH =, tstzrange(starts_at, ends_at) WITH &&)
        WHERE (teacher IS NOT NULL AND run_scheduled)
);

CREATE TABLE enrolments (
    id                       text        PRIMARY KEY,  -- '<run>:<hash of name and contact>': once per person
    run_id                   text        NOT NULL REFERENCES course_runs (id),
    library                  text        NOT NULL,
    position                 integer     NOT NULL CHECK (position >= 1),  -- arrival order in the run
    status                   text        NOT NULL CHECK (
        status IN ('enrolled', 'waitlisted', 'offered', 'offer_expired', 'cancelled', 'no_show')
    ),
    seat                     integer     CHECK (seat >= 1),
    offered_until            timestamptz,
    -- personal data: a name or pseudonym and one contact channel, erased after the retention period
    name                     text,
    phone                    text,
    email                    text,
    staff_member             text,  -- the library's own id for a staff member (kept for readiness)
    consented_at             timestamptz NOT NULL,
    attended                 integer[]   NOT NULL DEFAULT '{}',
    completed_at             timestamptz,
    personal_data_erased_at  timestamptz,
    CONSTRAINT one_arrival_per_position UNIQUE (run_id, position),
    -- deferred: one transaction may free a seat and offer it to the next on the waitlist
    CONSTRAINT one_holder_per_seat UNIQUE (run_id, seat) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT seat_while_enrolled_or_offered CHECK ((seat IS NOT NULL) = (status IN ('enrolled', 'offered'))),
    CONSTRAINT offer_has_a_window CHECK (status <> 'offered' OR offered_until IS NOT NULL),
    CONSTRAINT participant_until_erased CHECK (
        personal_data_erased_at IS NOT NULL OR (name IS NOT NULL AND (phone IS NULL) <> (email IS NULL))
    ),
    CONSTRAINT erased_is_gone CHECK (
        personal_data_erased_at IS NULL OR (name IS NULL AND phone IS NULL AND email IS NULL)
    )
);
CREATE INDEX enrolments_open_offers ON enrolments (offered_until) WHERE status = 'offered';

-- A library's readiness: its row is locked while a completion is added, so its
-- LibraryReadinessChanged events carry counts in commit order.
CREATE TABLE library_readiness (
    library     text        PRIMARY KEY,
    changed_at  timestamptz
);
CREATE TABLE trained_staff (
    library       text        NOT NULL REFERENCES library_readiness (library),
    training      text        NOT NULL,  -- a course type of kind staff_training
    staff_member  text        NOT NULL,
    trained_at    timestamptz NOT NULL,
    PRIMARY KEY (library, training, staff_member)
);

-- Routing's "course advised" decisions, one per question; a redelivered decision changes nothing.
CREATE TABLE course_advice (
    help_request_id  text        NOT NULL,
    question_index   integer     NOT NULL,
    library          text        NOT NULL,
    theme            text,
    course_types     text[]      NOT NULL,
    advised_at       timestamptz NOT NULL,
    PRIMARY KEY (help_request_id, question_index)
);
