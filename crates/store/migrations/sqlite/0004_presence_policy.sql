-- Who may see a number's presence: everyone (no row, or friends_only 0),
-- or only the listed friends (numbers as 13 digits, space-separated).
CREATE TABLE presence_policy (
    number        INTEGER PRIMARY KEY,
    friends_only  INTEGER NOT NULL,
    friends       TEXT NOT NULL,
    updated_ms    INTEGER NOT NULL
);
