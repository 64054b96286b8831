-- The portal's second part (issue 10).
-- One-time pairing codes a phone asks for with its device credentials:
-- only a hash of each code is kept; `used_ms` 0 means not used yet.
CREATE TABLE pairing_codes (
    number      BIGINT NOT NULL,
    code_hash   TEXT NOT NULL,
    expires_ms  BIGINT NOT NULL,
    used_ms     BIGINT NOT NULL,
    PRIMARY KEY (number, code_hash)
);

-- Signed-in portal sessions by number (the session itself lives in
-- tower-sessions' table): what lets a password change end a number's
-- other sessions, and what the operator counts. `sid_hash` is a hash of a
-- random token kept in the session.
CREATE TABLE portal_sessions (
    sid_hash    TEXT PRIMARY KEY,
    number      BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL
);
CREATE INDEX portal_sessions_number ON portal_sessions (number);

-- Friends lists: what friends-only presence checks. They replace the
-- space-separated list in presence_policy.friends, copied here.
CREATE TABLE friends (
    owner       BIGINT NOT NULL,
    friend      BIGINT NOT NULL,
    added_ms    BIGINT NOT NULL,
    PRIMARY KEY (owner, friend)
);
INSERT INTO friends (owner, friend, added_ms)
SELECT p.number, CAST(f AS BIGINT), 0
FROM presence_policy p, unnest(string_to_array(p.friends, ' ')) AS f
WHERE f <> ''
ON CONFLICT DO NOTHING;
UPDATE presence_policy SET friends = '';

-- Operator accounts (created from the command line) and numbers an
-- operator disabled.
CREATE TABLE operators (
    name           TEXT PRIMARY KEY,
    password_hash  TEXT NOT NULL,
    created_ms     BIGINT NOT NULL
);
CREATE TABLE disabled_numbers (
    number       BIGINT PRIMARY KEY,
    disabled_ms  BIGINT NOT NULL
);
