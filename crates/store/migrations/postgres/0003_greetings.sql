-- Greeting pictures: one as caller, one as callee per number; the PNG the
-- region made from the upload, and its update code (ETag).
CREATE TABLE greetings (
    number       BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    png          BYTEA NOT NULL,
    etag         TEXT NOT NULL,
    updated_ms   BIGINT NOT NULL,
    PRIMARY KEY (number, kind)
);
