-- The profiles the yellow pages have not indexed yet (an upgraded
-- database's, migration 0017) in an index of their own, so that
-- Store::open finds there are none without reading every profile.
CREATE INDEX profiles_unindexed ON profiles (number) WHERE search_words IS NULL;
