-- The directory of people and devices (issue 13), kept by the top. A
-- talker is a user's named device (the user is a peerdial number) and the
-- account it answers on: a peerdial number (kind 'peerdial', `number`) or
-- a foreign SIP account (kind 'sip', `aor` at `server`). `verified` 1:
-- proven (a number by its device's credentials, a foreign account by the
-- code sent to it). Numbered after the issue, like 0014.
CREATE TABLE talkers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    owner       INTEGER NOT NULL,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    number      INTEGER NOT NULL,
    aor         TEXT NOT NULL,
    server      TEXT NOT NULL,
    verified    INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL,
    UNIQUE (owner, name)
);
CREATE INDEX talkers_owner ON talkers (owner);

-- Bearer tokens the top gave a signed-in user (its region vouched for the
-- number with a PASSporT): only a hash of each is kept.
CREATE TABLE user_tokens (
    token_hash  TEXT PRIMARY KEY,
    number      INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL
);
