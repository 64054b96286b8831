-- Items a region relays from the top's global channels (issue 11) keep the
-- top's item id, so a restart resumes after the last one relayed.
ALTER TABLE channel_items ADD COLUMN origin BIGINT NOT NULL DEFAULT 0;
