-- Devices provisioned in this area: one per MAC, one number each.
CREATE TABLE devices (
    mac          TEXT PRIMARY KEY,
    number       INTEGER NOT NULL UNIQUE,
    secret_hash  TEXT NOT NULL,
    ha1_md5      TEXT NOT NULL,
    ha1_sha256   TEXT NOT NULL,
    ip           TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL
);

-- Current SIP binding of a number: what the zone publishes.
CREATE TABLE bindings (
    number       INTEGER PRIMARY KEY,
    uri          TEXT NOT NULL,
    contact      TEXT NOT NULL,
    transport    TEXT NOT NULL,
    addr         TEXT NOT NULL,
    expires_ms   INTEGER NOT NULL,
    call_id      TEXT NOT NULL,
    cseq         INTEGER NOT NULL
);
