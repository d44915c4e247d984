-- The question taxonomy, kept by the KB as data (PUT /v1/themes/{code}). Seeded at start from
-- shared/reference.py and intake's own defaults with ON CONFLICT DO NOTHING, so the KB's edits
-- survive restarts. A theme is never deleted, only retired: visits keep their codes.

CREATE TABLE themes (
    category              text    NOT NULL CHECK (category IN ('digital_government', 'library_services', 'other')),
    code                  text    NOT NULL,
    label                 text    NOT NULL,
    subthemes             jsonb   NOT NULL DEFAULT '{}',  -- subtheme code -> receiving organisation (null: at the desk)
    default_organisation  text,
    retired               boolean NOT NULL DEFAULT false,
    PRIMARY KEY (category, code)
);
