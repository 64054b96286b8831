-- Greeting pictures: one as caller, one as callee per number; the PNG the
-- region made from the upload, and its update code (ETag).
CREATE TABLE greetings (
    number       INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    png          BLOB NOT NULL,
    etag         TEXT NOT NULL,
    updated_ms   INTEGER NOT NULL,
    PRIMARY KEY (number, kind)
);
