-- The web portal: a number's sign-in password (an Argon2id PHC string) and
-- its profile. `public_mask` has one bit per field (see peerdial_store::
-- portal::FIELDS); `public_text` holds only the public fields' values and
-- is the only text the yellow pages index (profile_search, rowid = number).
-- (0004 is left to the presence policy work on its own branch.)
CREATE TABLE accounts (
    number         INTEGER PRIMARY KEY,
    password_hash  TEXT NOT NULL,
    updated_ms     INTEGER NOT NULL
);

CREATE TABLE profiles (
    number         INTEGER PRIMARY KEY,
    display_name   TEXT NOT NULL,
    city           TEXT NOT NULL,
    organisation   TEXT NOT NULL,
    interests      TEXT NOT NULL,
    introduction   TEXT NOT NULL,
    public_mask    INTEGER NOT NULL,
    listed         INTEGER NOT NULL,
    public_text    TEXT NOT NULL,
    updated_ms     INTEGER NOT NULL
);

CREATE VIRTUAL TABLE profile_search USING fts5(public_text, tokenize = 'unicode61');
