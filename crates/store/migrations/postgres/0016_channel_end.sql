-- A channel may stop taking posts at a time (issue 11); 0: never.
ALTER TABLE channels ADD COLUMN until_ms BIGINT NOT NULL DEFAULT 0;
