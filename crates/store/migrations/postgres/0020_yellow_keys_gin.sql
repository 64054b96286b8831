-- The yellow pages (issue 10): a GIN index of each listed profile's
-- posting keys, for two or more terms that are each common enough to have
-- long lists but rare together (a city and a word). Reading both lists of
-- profile_terms whole and intersecting them took 3 ms of server time a
-- search, nearly half of all page-statement time; GIN intersects its
-- compressed lists of row ids itself and reads only the rows that hold
-- every term. The keys are computed from `search_words` exactly as
-- yellow.rs's `keys()` does (each word, and the first 3 characters of a
-- longer one), so the index needs no column and no change to the writes.
CREATE FUNCTION peerdial_search_keys(words TEXT) RETURNS TEXT[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT k), '{}')
    FROM unnest(string_to_array(words, ' ')) AS w,
         LATERAL (VALUES (w), (CASE WHEN char_length(w) > 3 THEN left(w, 3) END)) AS v(k)
    WHERE k <> ''
$$;
CREATE INDEX profiles_keys ON profiles USING gin (peerdial_search_keys(search_words));
