-- 0002_auth: sessions (rotating refresh-token families) and login rate limiting.
--
-- Refresh tokens are stored as SHA-256 hashes only; a family is one login's chain of tokens,
-- revoked as a whole on logout, on reuse of a spent token, or when the user's rights change.

CREATE TABLE refresh_families (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    revoked_reason text,
    ip inet,
    user_agent text NOT NULL DEFAULT '',
    CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX refresh_families_user_idx ON refresh_families (user_id, expires_at);
COMMENT ON TABLE refresh_families IS
    'Login sessions: one chain of rotating refresh tokens, revoked as a whole.';

CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    family_id uuid NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    issued_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    rotated_at timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
COMMENT ON TABLE refresh_tokens IS
    'SHA-256 of each refresh token issued; rotated_at marks a spent one, whose reuse is theft.';

CREATE TABLE login_failures (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account text NOT NULL,
    ip inet NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_ip_idx ON login_failures (ip, at);
CREATE INDEX login_failures_at_idx ON login_failures (at);
COMMENT ON TABLE login_failures IS
    'Failed logins of the last 15 minutes (account as typed, lower-cased), for rate limiting.';

-- A login stamps last_login_at; that must not change the row's version (its ETag), or an admin
-- editing the user at that moment would get a false conflict.
DROP TRIGGER touch_row ON users;
CREATE TRIGGER touch_row BEFORE UPDATE ON users FOR EACH ROW
    WHEN ((to_jsonb(OLD) - 'last_login_at') IS DISTINCT FROM (to_jsonb(NEW) - 'last_login_at'))
    EXECUTE FUNCTION callcore_touch_row();
