-- A location's code is unique only within its library: the rollout keys locations by
-- (library, code), not by an id that merely happens to contain both.
ALTER TABLE locations ADD COLUMN code text;
UPDATE locations
SET code = CASE WHEN location_id LIKE library || ':%' THEN substr(location_id, length(library) + 2) ELSE location_id END;
-- Should two rows name one (library, code), the first registration is the opening.
DELETE FROM locations l USING locations k
WHERE l.version = k.version AND l.library = k.library AND l.code = k.code
  AND (l.opened_at, l.location_id) > (k.opened_at, k.location_id);
ALTER TABLE locations ALTER COLUMN code SET NOT NULL;
ALTER TABLE locations DROP CONSTRAINT locations_pkey;
ALTER TABLE locations DROP COLUMN location_id;
ALTER TABLE locations ADD PRIMARY KEY (version, library, code);

-- The national-coverage goal per year (IDO locations open at the year end): data the KB
-- maintains (PUT /v1/monitor/rollout/goals/{year}), not a read model (no version: a rebuild
-- leaves it alone). Seeded with the KB's rollout figures.
CREATE TABLE rollout_goals (
    year        int         PRIMARY KEY CHECK (year BETWEEN 2000 AND 2100),
    goal        int         NOT NULL CHECK (goal >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO rollout_goals (year, goal) VALUES (2019, 29), (2020, 73), (2021, 439), (2022, 664)
ON CONFLICT DO NOTHING;
