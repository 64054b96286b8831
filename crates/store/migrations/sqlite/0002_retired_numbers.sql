-- Numbers whose device was released: kept out of the pool for a while so
-- callers of the old owner do not reach a stranger straight away.
CREATE TABLE retired_numbers (
    number       INTEGER PRIMARY KEY,
    retired_ms   INTEGER NOT NULL
);
