-- The yellow pages search a stored tsvector of the public text instead of
-- computing it per row, so a scan in number order (common words: the page
-- fills at once) is as cheap as the GIN index (rare words).
DROP INDEX profiles_search;
ALTER TABLE profiles ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', public_text)) STORED;
CREATE INDEX profiles_search ON profiles USING GIN (search) WHERE listed <> 0;
