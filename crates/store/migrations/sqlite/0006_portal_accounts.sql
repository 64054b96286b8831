-- The portal's second part (issue 10).
-- One-time pairing codes a phone asks for with its device credentials:
-- only a hash of each code is kept; `used_ms` 0 means not used yet.
CREATE TABLE pairing_codes (
    number      INTEGER NOT NULL,
    code_hash   TEXT NOT NULL,
    expires_ms  INTEGER NOT NULL,
    used_ms     INTEGER NOT NULL,
    PRIMARY KEY (number, code_hash)
);

-- Signed-in portal sessions by number (the session itself lives in
-- tower-sessions' table): what lets a password change end a number's
-- other sessions, and what the operator counts. `sid_hash` is a hash of a
-- random token kept in the session.
CREATE TABLE portal_sessions (
    sid_hash    TEXT PRIMARY KEY,
    number      INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL
);
CREATE INDEX portal_sessions_number ON portal_sessions (number);

-- Friends lists: what friends-only presence checks. They replace the
-- space-separated list in presence_policy.friends, copied here.
CREATE TABLE friends (
    owner       INTEGER NOT NULL,
    friend      INTEGER NOT NULL,
    added_ms    INTEGER NOT NULL,
    PRIMARY KEY (owner, friend)
);
WITH RECURSIVE split(owner, item, rest) AS (
    SELECT number, '', friends || ' ' FROM presence_policy
    UNION ALL
    SELECT owner, substr(rest, 1, instr(rest, ' ') - 1), substr(rest, instr(rest, ' ') + 1)
    FROM split WHERE rest <> ''
)
INSERT OR IGNORE INTO friends (owner, friend, added_ms)
SELECT owner, CAST(item AS INTEGER), 0 FROM split WHERE item <> '';
UPDATE presence_policy SET friends = '';

-- Operator accounts (created from the command line) and numbers an
-- operator disabled.
CREATE TABLE operators (
    name           TEXT PRIMARY KEY,
    password_hash  TEXT NOT NULL,
    created_ms     INTEGER NOT NULL
);
CREATE TABLE disabled_numbers (
    number       INTEGER PRIMARY KEY,
    disabled_ms  INTEGER NOT NULL
);
