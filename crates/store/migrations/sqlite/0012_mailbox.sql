-- Calls to offline phones (issue 12). Numbered after the issue so it cannot
-- clash with migrations added meanwhile on other branches.
-- The call log (the patent's user_call): every call the mailbox answered.
CREATE TABLE mailbox_calls (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    callee      INTEGER NOT NULL,
    caller      TEXT NOT NULL,
    verified    INTEGER NOT NULL,
    at_ms       INTEGER NOT NULL
);
CREATE INDEX mailbox_calls_callee ON mailbox_calls (callee, at_ms);
-- Stored messages: the body in the row, or (path not empty) in a file.
-- read_ms 0: new.
CREATE TABLE mailbox_messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    number        INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    sender        TEXT NOT NULL,
    verified      INTEGER NOT NULL,
    at_ms         INTEGER NOT NULL,
    size          INTEGER NOT NULL,
    read_ms       INTEGER NOT NULL,
    body          BLOB NOT NULL,
    path          TEXT NOT NULL
);
CREATE INDEX mailbox_messages_number ON mailbox_messages (number, id);
-- Which device (a registration's instance or contact) confirmed which message.
CREATE TABLE mailbox_deliveries (
    message       INTEGER NOT NULL,
    device        TEXT NOT NULL,
    confirmed_ms  INTEGER NOT NULL,
    PRIMARY KEY (message, device)
);
-- The owner's recorded prompt (a WAV as uploaded).
CREATE TABLE mailbox_prompts (
    number      INTEGER PRIMARY KEY,
    wav         BLOB NOT NULL,
    updated_ms  INTEGER NOT NULL
);
-- The patent's user_property: each number's last known state and address.
CREATE TABLE number_state (
    number      INTEGER PRIMARY KEY,
    online      INTEGER NOT NULL,
    addr        TEXT NOT NULL,
    changed_ms  INTEGER NOT NULL
);
