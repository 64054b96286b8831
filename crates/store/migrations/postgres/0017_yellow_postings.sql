-- The yellow pages' own index (issue 10): a posting table of (key, number)
-- in b-tree order, where a key is a word of a listed profile's public
-- fields or the first three characters of a longer word, and a count of
-- profiles per key. A search walks the rarest term's list in number order
-- and checks the other terms on the row's `search_words` (its words, each
-- after a space), so a page costs about its own rows whatever the words.
-- Keys compare as bytes (COLLATE "C"), so a prefix is a key range.
-- `search_words` is NULL until the store has indexed the row: Store::open
-- indexes such rows (an upgraded database's profiles) before serving.
-- This replaces the GIN index and the stored tsvector (dropped here);
-- SQLite keeps FTS5, which measured faster there (docs/decisions.md).
CREATE TABLE profile_terms (
    term    TEXT COLLATE "C" NOT NULL,
    number  BIGINT NOT NULL,
    PRIMARY KEY (term, number)
);
CREATE TABLE profile_words (
    term      TEXT COLLATE "C" PRIMARY KEY,
    profiles  BIGINT NOT NULL
);
ALTER TABLE profiles ADD COLUMN search_words TEXT;
DROP INDEX profiles_search;
ALTER TABLE profiles DROP COLUMN search;
