-- An agency's views select the questions of its domain by theme.
CREATE INDEX question_rows_by_theme ON question_rows (version, theme);
