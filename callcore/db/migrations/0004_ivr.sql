-- 0004_ivr: what the IVR engine needs beyond flows and flow_versions (0001).
--
-- * Emergency overrides, per flow (here) and global (the settings key 'ivr.emergency'): force a
--   flow closed with a message, or force it open, without publishing anything.
-- * ivr_calls: one row per call through a flow, written when it starts and finalised with the
--   node where the caller left, so drop-off by node is a GROUP BY.
-- * audio_files: uploaded prompts, converted to what Asterisk plays and stored under the data
--   directory (sounds/callcore/<name>.<lang>.wav); flows refer to them by name.

ALTER TABLE flows
    ADD COLUMN emergency_mode text NOT NULL DEFAULT 'none'
        CONSTRAINT flows_emergency_mode_known CHECK (emergency_mode IN ('none', 'closed', 'open')),
    ADD COLUMN emergency_message text NOT NULL DEFAULT ''
        CONSTRAINT flows_emergency_message_sound CHECK (
            emergency_message = ''
            OR (char_length(emergency_message) <= 200
                AND emergency_message ~ '^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$')
        );
COMMENT ON COLUMN flows.emergency_mode IS
    'none: run the flow; closed: play emergency_message and hang up; open: time conditions say open.';

CREATE TABLE ivr_calls (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uniqueid text NOT NULL CHECK (char_length(uniqueid) <= 150),
    channel text NOT NULL DEFAULT '',
    did text,
    caller_id text NOT NULL DEFAULT '',
    flow_id bigint REFERENCES flows (id) ON DELETE SET NULL,
    flow_version integer, -- the version number the call started with (it keeps running it)
    started_at timestamptz NOT NULL DEFAULT now(),
    ended_at timestamptz,
    outcome text CHECK (outcome IN ('completed', 'hangup', 'step_limit', 'error', 'closed')),
    last_node text, -- the node where the call left the flow
    steps integer NOT NULL DEFAULT 0 CHECK (steps >= 0),
    path text[] NOT NULL DEFAULT '{}', -- node ids in visiting order
    variables jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(variables) = 'object'),
    error text,
    CONSTRAINT ivr_calls_ended_after_start CHECK (ended_at >= started_at),
    CONSTRAINT ivr_calls_outcome_when_ended CHECK ((ended_at IS NULL) = (outcome IS NULL))
);
CREATE INDEX ivr_calls_started_at_idx ON ivr_calls (started_at);
CREATE INDEX ivr_calls_flow_idx ON ivr_calls (flow_id, started_at);
CREATE INDEX ivr_calls_uniqueid_idx ON ivr_calls (uniqueid);
COMMENT ON TABLE ivr_calls IS 'Calls through IVR flows: the version run, the path, where they left.';

CREATE TABLE audio_files (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    language text NOT NULL CHECK (language ~ '^[a-z]{2}$'),
    path text NOT NULL UNIQUE, -- without extension, as Asterisk's Playback takes it
    original_name text NOT NULL DEFAULT '',
    duration_ms integer NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
    size_bytes bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    uploaded_by bigint REFERENCES users (id) ON DELETE SET NULL,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, language)
);
SELECT callcore_track_versions('audio_files');
COMMENT ON TABLE audio_files IS 'Uploaded prompts, one file per name and language, 8 kHz mono WAV.';
