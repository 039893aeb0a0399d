-- 0003_admin_fields: the retry fields the dialer reads from dispositions, and queue announcements.
--
-- A disposition's retry fields override the campaign's defaults for that outcome (NULL: the
-- campaign's value). Only a non-final outcome is ever retried, so a final one carries neither.

ALTER TABLE dispositions
    ADD COLUMN retry_delay_seconds integer
        CONSTRAINT dispositions_retry_delay_range
        CHECK (retry_delay_seconds BETWEEN 0 AND 2592000), -- at most 30 days
    ADD COLUMN max_retries integer
        CONSTRAINT dispositions_max_retries_range CHECK (max_retries BETWEEN 0 AND 100),
    ADD CONSTRAINT dispositions_final_not_retried
        CHECK (NOT is_final OR (retry_delay_seconds IS NULL AND max_retries IS NULL));
COMMENT ON COLUMN dispositions.retry_delay_seconds IS
    'Seconds before the dialer calls the lead again after this outcome; NULL: the campaign''s.';
COMMENT ON COLUMN dispositions.max_retries IS
    'How many times this outcome may be retried for one lead; NULL: the campaign''s limit.';

-- Sound names are what Asterisk's Playback takes: path segments of letters, digits, _ and -,
-- several joined by &. Nothing else can reach queues.conf from here.
ALTER TABLE queues
    ADD COLUMN announce_holdtime boolean NOT NULL DEFAULT false,
    ADD COLUMN periodic_announce text
        CONSTRAINT queues_periodic_announce_sounds CHECK (
            char_length(periodic_announce) <= 500
            AND periodic_announce
                ~ '^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*(&[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*)*$'
        ),
    ADD COLUMN periodic_announce_frequency integer
        CONSTRAINT queues_periodic_announce_frequency_range
        CHECK (periodic_announce_frequency BETWEEN 15 AND 3600),
    ADD CONSTRAINT queues_periodic_announce_pair
        CHECK ((periodic_announce IS NULL) = (periodic_announce_frequency IS NULL));
COMMENT ON COLUMN queues.announce_holdtime IS 'Tell waiting callers the estimated hold time.';
COMMENT ON COLUMN queues.periodic_announce IS
    'Sounds played to waiting callers at intervals, &-separated; NULL: none.';
COMMENT ON COLUMN queues.periodic_announce_frequency IS
    'Seconds between periodic announcements; set exactly when periodic_announce is.';
