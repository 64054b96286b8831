-- The yellow pages' index gets prefix indexes for 2- and 3-character
-- prefixes (people type the start of a word), and is rebuilt from the
-- profiles' public text. Searches walk it in number order and stop at the
-- page size, so a common word costs no more than a rare one.
DROP TABLE profile_search;
CREATE VIRTUAL TABLE profile_search USING fts5(public_text, tokenize = 'unicode61', prefix = '2 3');
INSERT INTO profile_search (rowid, public_text)
    SELECT number, public_text FROM profiles WHERE listed <> 0 AND public_text <> '';
