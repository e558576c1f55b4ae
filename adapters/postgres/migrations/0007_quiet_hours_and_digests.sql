-- Per-user quiet hours and per-kind digest switches (issue #13). A user's daily quiet
-- window is wall-clock times ('HH:MM', starts inside, ends outside) in their own zone,
-- kept by IANA name so that daylight saving moves it with the user's clock. A per-kind
-- preference may say whether what its cooldown holds back is sent as a digest, or
-- NULL to follow the policy's digest_after_cooldown (existing rows do).
CREATE TABLE quiet_hours (
    user_id text PRIMARY KEY,
    starts  text NOT NULL,
    ends    text NOT NULL,
    zone    text NOT NULL
);
ALTER TABLE notification_preferences ADD COLUMN digest boolean;
