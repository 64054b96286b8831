-- The yellow pages' index gets prefix indexes up to 6 characters. Every
-- search term is a prefix (people type the start of a word), and FTS5
-- answers a prefix it has no index for by merging the lists of every word
-- it begins, in full, before the first row: a common word that starts
-- others took 45-85 ms that way, against about 2 ms with the index
-- (docs/benchmarks.md). Longer prefixes begin few words. Rebuilt from the
-- profiles' public text.
DROP TABLE profile_search;
CREATE VIRTUAL TABLE profile_search USING fts5(public_text, tokenize = 'unicode61', prefix = '2 3 4 5 6');
INSERT INTO profile_search (rowid, public_text)
    SELECT number, public_text FROM profiles WHERE listed <> 0 AND public_text <> '';
