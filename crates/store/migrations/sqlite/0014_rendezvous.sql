-- Identity rendezvous (issue 14), kept by the top. One row per registered
-- mobile device: its MSISDN (E.164, "+…") and the HMAC-SHA256 of its IMSI
-- under the top's secret (hex). IMSIs themselves are never stored.
-- Numbered after the issue, not the next free number, so it cannot clash
-- with migrations added meanwhile on other branches (sqlx applies any not
-- yet applied).
CREATE TABLE rendezvous_devices (
    msisdn      TEXT PRIMARY KEY,
    imsi_hash   TEXT NOT NULL UNIQUE,
    updated_ms  INTEGER NOT NULL
);
