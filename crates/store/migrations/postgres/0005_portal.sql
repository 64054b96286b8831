-- The web portal: a number's sign-in password (an Argon2id PHC string) and
-- its profile. `public_mask` has one bit per field (see peerdial_store::
-- portal::FIELDS); `public_text` holds only the public fields' values and
-- is the only text the yellow pages search (full text, 'simple' config).
-- (0004 is left to the presence policy work on its own branch.)
CREATE TABLE accounts (
    number         BIGINT PRIMARY KEY,
    password_hash  TEXT NOT NULL,
    updated_ms     BIGINT NOT NULL
);

CREATE TABLE profiles (
    number         BIGINT PRIMARY KEY,
    display_name   TEXT NOT NULL,
    city           TEXT NOT NULL,
    organisation   TEXT NOT NULL,
    interests      TEXT NOT NULL,
    introduction   TEXT NOT NULL,
    public_mask    BIGINT NOT NULL,
    listed         BIGINT NOT NULL,
    public_text    TEXT NOT NULL,
    updated_ms     BIGINT NOT NULL
);

CREATE INDEX profiles_search ON profiles USING GIN (to_tsvector('simple', public_text)) WHERE listed <> 0;
