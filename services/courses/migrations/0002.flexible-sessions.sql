-- A run must follow its course type's number and length of sessions, unless the type allows
-- runs to deviate (e.g. a training given in parts, as a library can arrange it).
ALTER TABLE course_types ADD COLUMN flexible_sessions boolean NOT NULL DEFAULT false;
