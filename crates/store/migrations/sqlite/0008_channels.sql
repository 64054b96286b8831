-- Broadcasts, channels, private channels and the marquee (issue 11).
-- Ids only grow (AUTOINCREMENT): the marquee's watermarks rely on it.
CREATE TABLE channels (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    title       TEXT NOT NULL,
    scope       TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
);
CREATE TABLE channel_publishers (
    channel     INTEGER NOT NULL,
    number      INTEGER NOT NULL,
    PRIMARY KEY (channel, number)
);
-- channel 0 is the private channel of `owner`; poster 0 is an operator.
-- `delivered_ms` 0: a private item not yet shown to its owner.
CREATE TABLE channel_items (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    channel       INTEGER NOT NULL,
    owner         INTEGER NOT NULL,
    poster        INTEGER NOT NULL,
    text          TEXT NOT NULL,
    posted_ms     INTEGER NOT NULL,
    expires_ms    INTEGER NOT NULL,
    delivered_ms  INTEGER NOT NULL
);
CREATE INDEX channel_items_expires ON channel_items (expires_ms);
CREATE TABLE channel_subscriptions (
    number      INTEGER NOT NULL,
    channel     INTEGER NOT NULL,
    PRIMARY KEY (number, channel)
);
-- The highest item of a channel shown to a number.
CREATE TABLE marquee_seen (
    number      INTEGER NOT NULL,
    channel     INTEGER NOT NULL,
    item        INTEGER NOT NULL,
    PRIMARY KEY (number, channel)
);
-- every_ms 0: once; until_ms 0: no end; done_ms: the last delivery started.
CREATE TABLE broadcasts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    text        TEXT NOT NULL,
    every_ms    INTEGER NOT NULL,
    until_ms    INTEGER NOT NULL,
    next_ms     INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL,
    done_ms     INTEGER NOT NULL
);
