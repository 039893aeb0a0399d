-- 0001_domain: the whole callcore domain, so later migrations extend it rather than invent it.
--
-- Conventions (docs/schema.md explains them):
--   * keys are `bigint GENERATED ALWAYS AS IDENTITY`; times are timestamptz;
--   * phone numbers are E.164, enforced by the `e164` domain;
--   * every table an admin edits has `version` (served as the ETag), `created_at` and
--     `updated_at`; the `touch_row` trigger (callcore_track_versions) bumps `version` and sets
--     `updated_at` on every real change, so no code path can forget to;
--   * secrets are Fernet ciphertext in `bytea` columns named `*_encrypted`;
--   * things referenced by history (users, dispositions, pause codes, scorecards) are
--     deactivated rather than deleted: history references them with ON DELETE RESTRICT;
--     links to configuration that may go away (campaign, queue, DID...) are ON DELETE SET NULL.

-- ---------------------------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------------------------

CREATE DOMAIN e164 AS text CHECK (VALUE ~ '^\+[1-9][0-9]{1,14}$');
COMMENT ON DOMAIN e164 IS 'A phone number in E.164 form: +, country code, at most 15 digits.';

-- Declared IMMUTABLE so it can back CHECK constraints; the answer only changes if the server's
-- time-zone database drops a zone, which PostgreSQL upgrades do not do in practice.
CREATE FUNCTION callcore_is_timezone(zone text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
    PERFORM now() AT TIME ZONE zone;
    RETURN zone ~ '^[A-Za-z][A-Za-z0-9_-]*(/[A-Za-z0-9_+-]+)*$';
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN false;
END
$$;
COMMENT ON FUNCTION callcore_is_timezone(text) IS
    'True for an IANA time-zone name this server knows.';

CREATE FUNCTION callcore_touch_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION callcore_touch_row() IS 'Bumps version and updated_at of a changed row.';

CREATE FUNCTION callcore_track_versions(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        'CREATE TRIGGER touch_row BEFORE UPDATE ON %s FOR EACH ROW '
        'WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION callcore_touch_row()',
        tbl
    );
END
$$;
COMMENT ON FUNCTION callcore_track_versions(regclass) IS
    'Installs the touch_row trigger on a table with version and updated_at columns.';

-- ---------------------------------------------------------------------------------------------
-- People
-- ---------------------------------------------------------------------------------------------

CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    email text,
    role text NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent')),
    password_hash text NOT NULL,
    is_active boolean NOT NULL DEFAULT true,
    token_version integer NOT NULL DEFAULT 1,
    language text NOT NULL DEFAULT 'fr' CHECK (language IN ('fr', 'en')),
    last_login_at timestamptz,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
COMMENT ON TABLE users IS 'People who log in: admins, supervisors and agents.';

CREATE TABLE groups (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name <> ''),
    description text NOT NULL DEFAULT '',
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE groups IS 'Teams of users, assigned to campaigns as a whole.';

CREATE TABLE group_members (
    group_id bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user_idx ON group_members (user_id);
COMMENT ON TABLE group_members IS 'Which user belongs to which group.';

-- ---------------------------------------------------------------------------------------------
-- Global configuration
-- ---------------------------------------------------------------------------------------------

CREATE TABLE settings (
    key text PRIMARY KEY CHECK (key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
    value jsonb NOT NULL,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE settings IS
    'Run-time settings editable from the UI, one dotted key per JSON value.';

CREATE TABLE public_holidays (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    country text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    day date NOT NULL,
    label text NOT NULL DEFAULT '',
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (country, day)
);
COMMENT ON TABLE public_holidays IS
    'Days on which campaigns that skip public holidays do not dial.';

-- ---------------------------------------------------------------------------------------------
-- Dispositions and pause codes
-- ---------------------------------------------------------------------------------------------

CREATE TABLE disposition_groups (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code text NOT NULL UNIQUE CHECK (code ~ '^[a-z][a-z0-9_]{0,62}$'),
    -- {"en": "...", "fr": "..."}
    label jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(label) = 'object'),
    source text NOT NULL DEFAULT 'admin', -- registering plugin name, or 'admin'
    active boolean NOT NULL DEFAULT true,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE disposition_groups IS 'Named sets of dispositions that campaigns offer agents.';

CREATE TABLE dispositions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_id bigint NOT NULL REFERENCES disposition_groups (id) ON DELETE RESTRICT,
    code text NOT NULL UNIQUE CHECK (code ~ '^[a-z][a-z0-9_]{0,62}$'),
    label jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(label) = 'object'),
    is_final boolean NOT NULL DEFAULT true,
    is_callback boolean NOT NULL DEFAULT false,
    is_dnc boolean NOT NULL DEFAULT false,
    is_success boolean NOT NULL DEFAULT false,
    position integer NOT NULL DEFAULT 0,
    source text NOT NULL DEFAULT 'admin',
    active boolean NOT NULL DEFAULT true,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dispositions_group_idx ON dispositions (group_id, position);
COMMENT ON TABLE dispositions IS
    'Call outcomes (qualifications) with their flags: final, callback, do-not-call, success.';

CREATE TABLE pause_codes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code text NOT NULL UNIQUE CHECK (code ~ '^[a-z][a-z0-9_]{0,62}$'),
    label jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(label) = 'object'),
    is_productive boolean NOT NULL DEFAULT false, -- counts as work time (training, back office)
    max_duration_seconds integer CHECK (max_duration_seconds > 0), -- alert past it; NULL: none
    active boolean NOT NULL DEFAULT true,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pause_codes IS 'Reasons an agent gives for a pause (break, lunch, training...).';

-- ---------------------------------------------------------------------------------------------
-- IVR flows and agent scripts (versioned documents)
-- ---------------------------------------------------------------------------------------------

CREATE TABLE flows (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name <> ''),
    description text NOT NULL DEFAULT '',
    is_fallback boolean NOT NULL DEFAULT false, -- runs for calls to an unknown DID
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX flows_one_fallback ON flows ((true)) WHERE is_fallback;
COMMENT ON TABLE flows IS 'IVR flows; their content lives in flow_versions.';

CREATE TABLE flow_versions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    flow_id bigint NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    version_number integer NOT NULL CHECK (version_number > 0),
    status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'archived')),
    graph jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(graph) = 'object'), -- nodes and edges
    note text NOT NULL DEFAULT '',
    created_by bigint REFERENCES users (id) ON DELETE SET NULL,
    published_at timestamptz,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (flow_id, version_number),
    CONSTRAINT flow_versions_published_at_set
        CHECK (status <> 'published' OR published_at IS NOT NULL)
);
CREATE UNIQUE INDEX flow_versions_one_published ON flow_versions (flow_id)
    WHERE status = 'published';
COMMENT ON TABLE flow_versions IS
    'Versions of an IVR flow graph: draft, published (at most one per flow) or archived.';

CREATE TABLE scripts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name <> ''),
    description text NOT NULL DEFAULT '',
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE scripts IS 'Agent scripts; their content lives in script_versions.';

CREATE TABLE script_versions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    script_id bigint NOT NULL REFERENCES scripts (id) ON DELETE CASCADE,
    version_number integer NOT NULL CHECK (version_number > 0),
    status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'archived')),
    -- [{"id", "title", "blocks": [{"type", ...}], "conditions": [{"when", "goto"}]}, ...]
    pages jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(pages) = 'array'),
    note text NOT NULL DEFAULT '',
    created_by bigint REFERENCES users (id) ON DELETE SET NULL,
    published_at timestamptz,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (script_id, version_number),
    CONSTRAINT script_versions_published_at_set
        CHECK (status <> 'published' OR published_at IS NOT NULL)
);
CREATE UNIQUE INDEX script_versions_one_published ON script_versions (script_id)
    WHERE status = 'published';
COMMENT ON TABLE script_versions IS
    'Versions of an agent script (pages, blocks, conditions); at most one published per script.';

-- ---------------------------------------------------------------------------------------------
-- Telephony resources
-- ---------------------------------------------------------------------------------------------

CREATE TABLE sip_trunks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9_-]{0,62}$'), -- PJSIP endpoint id
    label text NOT NULL DEFAULT '',
    host text NOT NULL CHECK (host <> ''),
    port integer NOT NULL DEFAULT 5060 CHECK (port BETWEEN 1 AND 65535),
    transport text NOT NULL DEFAULT 'udp' CHECK (transport IN ('udp', 'tcp', 'tls')),
    username text,
    password_encrypted bytea,
    register boolean NOT NULL DEFAULT false,
    from_user text,
    from_domain text,
    match_addresses cidr[] NOT NULL DEFAULT '{}', -- source addresses that identify inbound calls
    codecs text[] NOT NULL DEFAULT '{alaw,ulaw}' CHECK (cardinality(codecs) > 0),
    number_format text NOT NULL DEFAULT 'e164' CHECK (number_format IN ('e164', 'e164_no_plus')),
    dial_prefix text NOT NULL DEFAULT '' CHECK (dial_prefix ~ '^[0-9*#]*$'),
    max_concurrent_calls integer NOT NULL DEFAULT 30 CHECK (max_concurrent_calls > 0),
    daily_spend_cap numeric(12, 2) CHECK (daily_spend_cap >= 0), -- NULL: no cap
    cost_per_minute numeric(10, 5) NOT NULL DEFAULT 0 CHECK (cost_per_minute >= 0),
    currency text NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$'),
    -- E.164 prefixes outbound calls may go to ('+33', '+' for everywhere); empty: none at all.
    allowed_prefixes text[] NOT NULL DEFAULT '{}' CHECK (
        array_position(allowed_prefixes, NULL) IS NULL
        AND array_to_string(allowed_prefixes, ',') ~ '^(\+[0-9]{0,15}(,\+[0-9]{0,15})*)?$'
    ),
    enabled boolean NOT NULL DEFAULT true,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sip_trunks_register_credentials
        CHECK (NOT register OR (username IS NOT NULL AND password_encrypted IS NOT NULL))
);
COMMENT ON TABLE sip_trunks IS
    'SIP trunks to carriers, with encrypted credentials, concurrency and spend caps, and an '
    'allowlist of destination prefixes.';

CREATE TABLE caller_id_numbers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    number e164 NOT NULL UNIQUE,
    label text NOT NULL DEFAULT '',
    trunk_id bigint REFERENCES sip_trunks (id) ON DELETE SET NULL,
    verified_at timestamptz, -- when the right to present this number was checked
    active boolean NOT NULL DEFAULT true,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE caller_id_numbers IS 'Numbers the organisation owns and campaigns may present.';

CREATE TABLE dids (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    number e164 NOT NULL UNIQUE,
    label text NOT NULL DEFAULT '',
    trunk_id bigint REFERENCES sip_trunks (id) ON DELETE SET NULL,
    flow_id bigint REFERENCES flows (id) ON DELETE RESTRICT, -- NULL: the fallback flow
    active boolean NOT NULL DEFAULT true,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dids_flow_idx ON dids (flow_id);
COMMENT ON TABLE dids IS 'Inbound numbers and the IVR flow each one runs.';

CREATE TABLE queues (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9_-]{0,62}$'), -- Asterisk queue name
    label text NOT NULL DEFAULT '',
    strategy text NOT NULL DEFAULT 'rrmemory' CHECK (strategy IN (
        'ringall', 'leastrecent', 'fewestcalls', 'random', 'rrmemory', 'rrordered', 'linear',
        'wrandom'
    )),
    member_timeout_seconds integer NOT NULL DEFAULT 15
        CHECK (member_timeout_seconds BETWEEN 1 AND 300),
    retry_seconds integer NOT NULL DEFAULT 5 CHECK (retry_seconds BETWEEN 0 AND 300),
    wrapup_seconds integer NOT NULL DEFAULT 10 CHECK (wrapup_seconds BETWEEN 0 AND 3600),
    max_waiting integer NOT NULL DEFAULT 0 CHECK (max_waiting >= 0), -- 0: unlimited
    max_wait_seconds integer CHECK (max_wait_seconds > 0), -- NULL: unlimited
    overflow_flow_id bigint REFERENCES flows (id) ON DELETE RESTRICT, -- where callers go then
    music_class text NOT NULL DEFAULT 'default',
    announce_position boolean NOT NULL DEFAULT false,
    service_level_seconds integer NOT NULL DEFAULT 20 CHECK (service_level_seconds > 0),
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE queues IS 'Asterisk call queues that distribute calls to agents.';

CREATE TABLE queue_members (
    queue_id bigint NOT NULL REFERENCES queues (id) ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    penalty integer NOT NULL DEFAULT 0 CHECK (penalty BETWEEN 0 AND 100),
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue_id, user_id)
);
CREATE INDEX queue_members_user_idx ON queue_members (user_id);
COMMENT ON TABLE queue_members IS 'Agents who answer a queue, with their penalty.';

CREATE TABLE phones (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint text NOT NULL UNIQUE CHECK (endpoint ~ '^[a-z0-9][a-z0-9_-]{0,62}$'), -- PJSIP id
    label text NOT NULL DEFAULT '',
    extension text UNIQUE CHECK (extension ~ '^[0-9]{2,8}$'),
    password_encrypted bytea,
    transport text NOT NULL DEFAULT 'udp' CHECK (transport IN ('udp', 'tcp', 'tls', 'wss')),
    webrtc boolean NOT NULL DEFAULT false,
    codecs text[] NOT NULL DEFAULT '{alaw,ulaw}' CHECK (cardinality(codecs) > 0),
    max_contacts smallint NOT NULL DEFAULT 1 CHECK (max_contacts BETWEEN 1 AND 10),
    active boolean NOT NULL DEFAULT true,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE phones IS 'Agent phones: SIP (PJSIP) endpoints, hardware, soft or WebRTC.';

CREATE TABLE phone_assignments (
    phone_id bigint PRIMARY KEY REFERENCES phones (id) ON DELETE CASCADE,
    user_id bigint NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    assigned_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE phone_assignments IS 'Which agent uses which phone (one each way).';

CREATE TABLE voicemail_boxes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    context text NOT NULL DEFAULT 'default' CHECK (context ~ '^[a-z0-9_-]+$'),
    mailbox text NOT NULL CHECK (mailbox ~ '^[0-9]{2,10}$'),
    name text NOT NULL DEFAULT '',
    email text,
    pin_encrypted bytea,
    user_id bigint REFERENCES users (id) ON DELETE SET NULL,
    queue_id bigint REFERENCES queues (id) ON DELETE SET NULL,
    attach_audio boolean NOT NULL DEFAULT true,
    delete_after_email boolean NOT NULL DEFAULT false,
    max_message_seconds integer NOT NULL DEFAULT 180
        CHECK (max_message_seconds BETWEEN 10 AND 3600),
    active boolean NOT NULL DEFAULT true,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (context, mailbox)
);
COMMENT ON TABLE voicemail_boxes IS 'Asterisk voicemail boxes, for a user, a queue or a flow.';

-- ---------------------------------------------------------------------------------------------
-- Do-not-call lists
-- ---------------------------------------------------------------------------------------------

CREATE TABLE dnc_lists (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name <> ''),
    description text NOT NULL DEFAULT '',
    is_global boolean NOT NULL DEFAULT false, -- checked for every campaign
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dnc_lists IS
    'Do-not-call lists: internal, per client, or a national registry extract (Bloctel).';

-- ---------------------------------------------------------------------------------------------
-- Campaigns
-- ---------------------------------------------------------------------------------------------

CREATE TABLE campaigns (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- general
    name text NOT NULL UNIQUE CHECK (name <> ''),
    description text NOT NULL DEFAULT '',
    direction text NOT NULL DEFAULT 'outbound'
        CHECK (direction IN ('outbound', 'inbound', 'blended')),
    status text NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'active', 'paused', 'stopped', 'archived')),
    priority integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 100),
    queue_id bigint REFERENCES queues (id) ON DELETE RESTRICT,
    script_id bigint REFERENCES scripts (id) ON DELETE RESTRICT,
    trunk_id bigint REFERENCES sip_trunks (id) ON DELETE RESTRICT,
    answer_flow_id bigint REFERENCES flows (id) ON DELETE RESTRICT, -- run on answer, if any
    -- scheduling (in the lead's time zone when known and use_lead_timezone, else timezone)
    timezone text NOT NULL DEFAULT 'Europe/Paris' CHECK (callcore_is_timezone(timezone)),
    use_lead_timezone boolean NOT NULL DEFAULT true,
    starts_on date,
    ends_on date,
    calling_days smallint[] NOT NULL DEFAULT '{1,2,3,4,5}' -- ISO weekdays, 1 = Monday
        CHECK (cardinality(calling_days) > 0 AND calling_days <@ '{1,2,3,4,5,6,7}'),
    calling_hours_start time NOT NULL DEFAULT '10:00',
    calling_hours_end time NOT NULL DEFAULT '20:00',
    calling_break_start time, -- e.g. 13:00-14:00, as French rules require
    calling_break_end time,
    skip_public_holidays boolean NOT NULL DEFAULT true,
    holiday_country text NOT NULL DEFAULT 'FR' CHECK (holiday_country ~ '^[A-Z]{2}$'),
    -- strategy
    dial_mode text NOT NULL DEFAULT 'progressive'
        CHECK (dial_mode IN ('predictive', 'progressive', 'preview', 'manual')),
    dial_ratio numeric(4, 2) NOT NULL DEFAULT 1 CHECK (dial_ratio BETWEEN 1 AND 10),
    strategy_params jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(strategy_params) = 'object'),
    hopper_size integer NOT NULL DEFAULT 100 CHECK (hopper_size BETWEEN 1 AND 10000),
    max_attempts integer NOT NULL DEFAULT 4 CHECK (max_attempts BETWEEN 1 AND 100),
    retry_delay_no_answer interval NOT NULL DEFAULT '2 hours'
        CHECK (retry_delay_no_answer >= interval '1 minute'),
    retry_delay_busy interval NOT NULL DEFAULT '15 minutes'
        CHECK (retry_delay_busy >= interval '1 minute'),
    retry_delay_machine interval NOT NULL DEFAULT '4 hours'
        CHECK (retry_delay_machine >= interval '1 minute'),
    retry_delay_failed interval NOT NULL DEFAULT '1 hour'
        CHECK (retry_delay_failed >= interval '1 minute'),
    ring_timeout_seconds integer NOT NULL DEFAULT 25 CHECK (ring_timeout_seconds BETWEEN 5 AND 120),
    preview_timeout_seconds integer -- preview mode dials by itself after it; NULL: never
        CHECK (preview_timeout_seconds BETWEEN 5 AND 600),
    wrapup_seconds integer NOT NULL DEFAULT 15 CHECK (wrapup_seconds BETWEEN 0 AND 3600),
    -- quality and compliance
    caller_id_policy text NOT NULL DEFAULT 'fixed'
        CHECK (caller_id_policy IN ('fixed', 'rotate', 'local_presence', 'trunk_default')),
    caller_id_number_id bigint REFERENCES caller_id_numbers (id) ON DELETE RESTRICT, -- 'fixed'
    amd_enabled boolean NOT NULL DEFAULT false,
    amd_action text NOT NULL DEFAULT 'hangup'
        CHECK (amd_action IN ('hangup', 'leave_message', 'transfer')),
    amd_message text, -- sound played to a machine with 'leave_message'
    recording_mode text NOT NULL DEFAULT 'all'
        CHECK (recording_mode IN ('none', 'all', 'sampled', 'on_demand')),
    recording_sample_percent smallint CHECK (recording_sample_percent BETWEEN 1 AND 100),
    recording_retention_days integer CHECK (recording_retention_days > 0), -- NULL: keep
    max_abandon_rate numeric(5, 2) NOT NULL DEFAULT 3 CHECK (max_abandon_rate BETWEEN 0 AND 100),
    abandon_timeout_seconds integer NOT NULL DEFAULT 2
        CHECK (abandon_timeout_seconds BETWEEN 1 AND 30),
    abandon_message text, -- sound played to an answered party no agent could take
    check_dnc boolean NOT NULL DEFAULT true,
    require_consent boolean NOT NULL DEFAULT false,
    consent_scope text, -- the consent_records.scope a lead must hold when require_consent
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT campaigns_dates_ordered CHECK (ends_on >= starts_on),
    CONSTRAINT campaigns_calling_hours_ordered CHECK (calling_hours_start < calling_hours_end),
    CONSTRAINT campaigns_break_both_or_neither
        CHECK ((calling_break_start IS NULL) = (calling_break_end IS NULL)),
    CONSTRAINT campaigns_break_within_hours CHECK (calling_break_start IS NULL OR (
        calling_hours_start < calling_break_start
        AND calling_break_start < calling_break_end
        AND calling_break_end < calling_hours_end
    )),
    CONSTRAINT campaigns_caller_id_required
        CHECK (status = 'draft' OR caller_id_policy <> 'fixed' OR caller_id_number_id IS NOT NULL),
    CONSTRAINT campaigns_amd_message_required
        CHECK (amd_action <> 'leave_message' OR amd_message IS NOT NULL),
    CONSTRAINT campaigns_sample_percent_iff_sampled
        CHECK ((recording_mode = 'sampled') = (recording_sample_percent IS NOT NULL)),
    CONSTRAINT campaigns_consent_scope_required
        CHECK (NOT require_consent OR consent_scope IS NOT NULL)
);
CREATE INDEX campaigns_status_idx ON campaigns (status) WHERE status IN ('active', 'paused');
COMMENT ON TABLE campaigns IS
    'Campaigns with their general, scheduling, strategy and quality/compliance settings.';

CREATE TABLE campaign_groups (
    campaign_id bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    group_id bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (campaign_id, group_id)
);
CREATE INDEX campaign_groups_group_idx ON campaign_groups (group_id);
COMMENT ON TABLE campaign_groups IS 'Groups whose members work a campaign.';

CREATE TABLE campaign_users (
    campaign_id bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (campaign_id, user_id)
);
CREATE INDEX campaign_users_user_idx ON campaign_users (user_id);
COMMENT ON TABLE campaign_users IS 'Users assigned to a campaign individually.';

CREATE TABLE campaign_disposition_groups (
    campaign_id bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    disposition_group_id bigint NOT NULL REFERENCES disposition_groups (id) ON DELETE RESTRICT,
    PRIMARY KEY (campaign_id, disposition_group_id)
);
CREATE INDEX campaign_disposition_groups_group_idx
    ON campaign_disposition_groups (disposition_group_id);
COMMENT ON TABLE campaign_disposition_groups IS 'Disposition groups a campaign offers its agents.';

CREATE TABLE campaign_caller_ids (
    campaign_id bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    caller_id_number_id bigint NOT NULL REFERENCES caller_id_numbers (id) ON DELETE CASCADE,
    PRIMARY KEY (campaign_id, caller_id_number_id)
);
CREATE INDEX campaign_caller_ids_number_idx ON campaign_caller_ids (caller_id_number_id);
COMMENT ON TABLE campaign_caller_ids IS
    'The pool of caller-ID numbers a campaign rotates through or picks locally from.';

CREATE TABLE campaign_dnc_lists (
    campaign_id bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    dnc_list_id bigint NOT NULL REFERENCES dnc_lists (id) ON DELETE CASCADE,
    PRIMARY KEY (campaign_id, dnc_list_id)
);
CREATE INDEX campaign_dnc_lists_list_idx ON campaign_dnc_lists (dnc_list_id);
COMMENT ON TABLE campaign_dnc_lists IS
    'Do-not-call lists a campaign checks besides the global ones.';

-- ---------------------------------------------------------------------------------------------
-- Contacts
-- ---------------------------------------------------------------------------------------------

CREATE TABLE contact_lists (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name <> ''),
    description text NOT NULL DEFAULT '',
    campaign_id bigint REFERENCES campaigns (id) ON DELETE SET NULL,
    active boolean NOT NULL DEFAULT true,
    source text NOT NULL DEFAULT '', -- where it came from, e.g. the imported file name
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contact_lists_campaign_idx ON contact_lists (campaign_id) WHERE active;
COMMENT ON TABLE contact_lists IS 'Lists of leads, each feeding (at most) one campaign.';

CREATE TABLE leads (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    list_id bigint NOT NULL REFERENCES contact_lists (id) ON DELETE CASCADE,
    external_id text, -- the key in the customer's system, unique within a list
    phone_number e164 NOT NULL,
    first_name text NOT NULL DEFAULT '',
    last_name text NOT NULL DEFAULT '',
    email text,
    timezone text CHECK (callcore_is_timezone(timezone)), -- NULL: the campaign's
    custom_fields jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(custom_fields) = 'object'),
    status text NOT NULL DEFAULT 'new' CHECK (status IN (
        'new', 'retry', 'callback', 'in_progress', 'done', 'max_attempts', 'dnc', 'invalid'
    )),
    priority integer NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz DEFAULT now(),
    last_attempt_at timestamptz,
    last_disposition_id bigint REFERENCES dispositions (id) ON DELETE RESTRICT,
    callback_agent_id bigint REFERENCES users (id) ON DELETE SET NULL, -- personal callback
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT leads_dialable_has_next_attempt
        CHECK (status NOT IN ('new', 'retry', 'callback') OR next_attempt_at IS NOT NULL)
);
-- The dialer's "next leads": WHERE list_id = ANY($1) AND status IN ('new','retry','callback')
-- AND next_attempt_at <= now() ORDER BY priority DESC, next_attempt_at
-- LIMIT n FOR UPDATE SKIP LOCKED.
CREATE INDEX leads_dial_queue_idx ON leads (list_id, priority DESC, next_attempt_at)
    WHERE status IN ('new', 'retry', 'callback');
CREATE INDEX leads_phone_number_idx ON leads (phone_number);
CREATE INDEX leads_callback_agent_idx ON leads (callback_agent_id, next_attempt_at)
    WHERE status = 'callback';
CREATE UNIQUE INDEX leads_external_id_key ON leads (list_id, external_id)
    WHERE external_id IS NOT NULL;
COMMENT ON TABLE leads IS
    'People to call: E.164 number, time zone, custom fields, status, attempts, next attempt.';

-- ---------------------------------------------------------------------------------------------
-- Calls
-- ---------------------------------------------------------------------------------------------

CREATE TABLE calls (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    server_id text NOT NULL, -- the configured Asterisk server this leg ran on
    uniqueid text NOT NULL, -- Asterisk's Uniqueid of the leg
    linkedid text, -- Asterisk's Linkedid: legs of one conversation share it
    direction text NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    outcome text CHECK (outcome IN (
        'answered', 'no_answer', 'busy', 'congestion', 'failed', 'machine', 'abandoned',
        'cancelled'
    )), -- NULL while the leg is still up
    campaign_id bigint REFERENCES campaigns (id) ON DELETE SET NULL,
    lead_id bigint REFERENCES leads (id) ON DELETE SET NULL,
    agent_id bigint REFERENCES users (id) ON DELETE RESTRICT,
    queue_id bigint REFERENCES queues (id) ON DELETE SET NULL,
    did_id bigint REFERENCES dids (id) ON DELETE SET NULL,
    trunk_id bigint REFERENCES sip_trunks (id) ON DELETE SET NULL,
    flow_id bigint REFERENCES flows (id) ON DELETE SET NULL,
    disposition_id bigint REFERENCES dispositions (id) ON DELETE RESTRICT,
    remote_number text NOT NULL DEFAULT '', -- the other party as dialled or presented
    caller_id text, -- the number we presented (outbound) or received (inbound)
    started_at timestamptz NOT NULL,
    answered_at timestamptz,
    ended_at timestamptz,
    ring_seconds integer NOT NULL DEFAULT 0 CHECK (ring_seconds >= 0),
    queue_wait_seconds integer NOT NULL DEFAULT 0 CHECK (queue_wait_seconds >= 0),
    talk_seconds integer NOT NULL DEFAULT 0 CHECK (talk_seconds >= 0),
    hold_seconds integer NOT NULL DEFAULT 0 CHECK (hold_seconds >= 0),
    wrapup_seconds integer NOT NULL DEFAULT 0 CHECK (wrapup_seconds >= 0),
    hangup_cause smallint CHECK (hangup_cause BETWEEN 0 AND 127), -- Q.850
    hangup_by text CHECK (hangup_by IN ('remote', 'agent', 'system')),
    amd_result text CHECK (amd_result IN ('human', 'machine', 'notsure', 'hangup')),
    recording_path text,
    cost numeric(12, 5) CHECK (cost >= 0),
    notes text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (server_id, uniqueid),
    CONSTRAINT calls_answered_after_start CHECK (answered_at >= started_at),
    CONSTRAINT calls_ended_after_start CHECK (ended_at >= started_at),
    CONSTRAINT calls_ended_after_answer CHECK (ended_at >= answered_at)
);
CREATE INDEX calls_started_at_idx ON calls (started_at);
CREATE INDEX calls_campaign_idx ON calls (campaign_id, started_at);
CREATE INDEX calls_agent_idx ON calls (agent_id, started_at);
CREATE INDEX calls_queue_idx ON calls (queue_id, started_at);
CREATE INDEX calls_trunk_idx ON calls (trunk_id, started_at); -- daily spend per trunk
CREATE INDEX calls_lead_idx ON calls (lead_id);
CREATE INDEX calls_remote_number_idx ON calls (remote_number, started_at);
CREATE INDEX calls_linkedid_idx ON calls (linkedid) WHERE linkedid IS NOT NULL;
COMMENT ON TABLE calls IS
    'Call detail records: one row per call leg outcome, keyed by (server_id, uniqueid).';

CREATE TABLE recordings (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id bigint NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    path text NOT NULL UNIQUE,
    format text NOT NULL DEFAULT 'wav'
        CHECK (format IN ('wav', 'wav49', 'gsm', 'mp3', 'ogg', 'opus')),
    size_bytes bigint CHECK (size_bytes >= 0),
    duration_seconds integer CHECK (duration_seconds >= 0),
    sha256 text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    started_at timestamptz NOT NULL,
    expires_at timestamptz, -- retention: purge after it
    deleted_at timestamptz, -- the file was purged; the row stays as a trace
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recordings_call_idx ON recordings (call_id);
CREATE INDEX recordings_expiry_idx ON recordings (expires_at) WHERE deleted_at IS NULL;
COMMENT ON TABLE recordings IS 'Recorded audio files of calls, with retention and purge dates.';

-- ---------------------------------------------------------------------------------------------
-- Compliance
-- ---------------------------------------------------------------------------------------------

CREATE TABLE dnc_entries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dnc_list_id bigint NOT NULL REFERENCES dnc_lists (id) ON DELETE CASCADE,
    phone_number e164 NOT NULL,
    source text NOT NULL CHECK (source IN (
        'admin', 'agent', 'disposition', 'ivr', 'import', 'api', 'refusal', 'registry'
    )),
    added_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz, -- NULL: never
    reason text NOT NULL DEFAULT '',
    added_by bigint REFERENCES users (id) ON DELETE SET NULL,
    call_id bigint REFERENCES calls (id) ON DELETE SET NULL,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (phone_number, dnc_list_id), -- also the "is this number blocked" lookup
    CONSTRAINT dnc_entries_expiry_after_added CHECK (expires_at > added_at)
);
CREATE INDEX dnc_entries_list_idx ON dnc_entries (dnc_list_id);
COMMENT ON TABLE dnc_entries IS 'Numbers on a do-not-call list, with source, date and expiry.';

CREATE TABLE consent_records (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phone_number e164 NOT NULL,
    lead_id bigint REFERENCES leads (id) ON DELETE SET NULL,
    subject_name text NOT NULL DEFAULT '', -- who consented
    consented_at timestamptz NOT NULL,
    channel text NOT NULL CHECK (channel IN (
        'web_form', 'phone', 'paper', 'email', 'sms', 'in_person', 'partner', 'other'
    )),
    scope text NOT NULL CHECK (scope <> ''), -- what was consented to (brand, product, purpose)
    proof_reference text NOT NULL CHECK (proof_reference <> ''), -- where the proof is kept
    collected_by text NOT NULL DEFAULT '', -- the organisation or partner that collected it
    expires_at timestamptz,
    revoked_at timestamptz,
    revocation_channel text,
    recorded_by bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT consent_records_expiry_after_consent CHECK (expires_at > consented_at),
    CONSTRAINT consent_records_revoked_after_consent CHECK (revoked_at >= consented_at),
    CONSTRAINT consent_records_revocation_complete
        CHECK ((revoked_at IS NULL) = (revocation_channel IS NULL))
);
CREATE INDEX consent_records_lookup_idx ON consent_records (phone_number, scope)
    WHERE revoked_at IS NULL;
CREATE INDEX consent_records_lead_idx ON consent_records (lead_id);
COMMENT ON TABLE consent_records IS
    'Provable prior consent to be called: who, when, how, scope, proof reference, revocation.';

-- A consent record is legal proof: once written only its revocation may be recorded, its lead
-- (re)linked and recorded_by cleared by ON DELETE SET NULL; a mistaken record is revoked or
-- deleted, never rewritten.
CREATE FUNCTION consent_records_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.phone_number, NEW.subject_name, NEW.consented_at, NEW.channel, NEW.scope,
        NEW.proof_reference, NEW.collected_by, NEW.expires_at, NEW.created_at)
       IS DISTINCT FROM
       (OLD.phone_number, OLD.subject_name, OLD.consented_at, OLD.channel, OLD.scope,
        OLD.proof_reference, OLD.collected_by, OLD.expires_at, OLD.created_at)
       OR (OLD.revoked_at IS NOT NULL AND (NEW.revoked_at, NEW.revocation_channel)
           IS DISTINCT FROM (OLD.revoked_at, OLD.revocation_channel))
       OR (NEW.recorded_by IS NOT NULL AND NEW.recorded_by IS DISTINCT FROM OLD.recorded_by)
    THEN
        RAISE EXCEPTION 'consent record % is proof and cannot be edited; only a revocation can '
                        'be added', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER consent_records_guard BEFORE UPDATE ON consent_records
    FOR EACH ROW EXECUTE FUNCTION consent_records_guard();

CREATE TABLE refusals (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phone_number e164 NOT NULL,
    refused_at timestamptz NOT NULL DEFAULT now(),
    channel text NOT NULL DEFAULT 'call'
        CHECK (channel IN ('call', 'ivr', 'email', 'letter', 'web', 'other')),
    reason text NOT NULL DEFAULT '',
    campaign_id bigint REFERENCES campaigns (id) ON DELETE SET NULL,
    lead_id bigint REFERENCES leads (id) ON DELETE SET NULL,
    call_id bigint REFERENCES calls (id) ON DELETE SET NULL,
    agent_id bigint REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX refusals_phone_number_idx ON refusals (phone_number, refused_at);
COMMENT ON TABLE refusals IS
    'A person refused further calls (e.g. during a call), which blocks new ones for a while.';

CREATE TABLE number_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phone_number e164 NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    answered boolean NOT NULL DEFAULT false,
    campaign_id bigint REFERENCES campaigns (id) ON DELETE SET NULL,
    lead_id bigint REFERENCES leads (id) ON DELETE SET NULL,
    call_id bigint REFERENCES calls (id) ON DELETE SET NULL -- set once the call row exists
);
-- "attempts to this number in the last 30 days": WHERE phone_number = $1 AND attempted_at > ...
CREATE INDEX number_attempts_recent_idx ON number_attempts (phone_number, attempted_at);
CREATE INDEX number_attempts_attempted_at_idx ON number_attempts (attempted_at); -- purge
COMMENT ON TABLE number_attempts IS
    'Every dial attempt to a number, across all campaigns, for legal caps per period.';

-- ---------------------------------------------------------------------------------------------
-- Agents at work
-- ---------------------------------------------------------------------------------------------

CREATE TABLE agent_sessions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    phone_id bigint REFERENCES phones (id) ON DELETE SET NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    ended_at timestamptz,
    end_reason text CHECK (end_reason IN ('logout', 'timeout', 'forced', 'shutdown')),
    CONSTRAINT agent_sessions_ended_after_start CHECK (ended_at >= started_at),
    CONSTRAINT agent_sessions_end_reason_iff_ended CHECK ((ended_at IS NULL) = (end_reason IS NULL))
);
CREATE UNIQUE INDEX agent_sessions_one_open ON agent_sessions (user_id) WHERE ended_at IS NULL;
CREATE INDEX agent_sessions_user_idx ON agent_sessions (user_id, started_at);
CREATE INDEX agent_sessions_started_at_idx ON agent_sessions (started_at);
COMMENT ON TABLE agent_sessions IS 'Agent log-in periods, with the phone used.';

CREATE TABLE agent_pauses (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id bigint NOT NULL REFERENCES agent_sessions (id) ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    pause_code_id bigint REFERENCES pause_codes (id) ON DELETE RESTRICT, -- NULL: no reason given
    started_at timestamptz NOT NULL DEFAULT now(),
    ended_at timestamptz,
    CONSTRAINT agent_pauses_ended_after_start CHECK (ended_at >= started_at)
);
CREATE UNIQUE INDEX agent_pauses_one_open ON agent_pauses (session_id) WHERE ended_at IS NULL;
CREATE INDEX agent_pauses_user_idx ON agent_pauses (user_id, started_at);
CREATE INDEX agent_pauses_code_idx ON agent_pauses (pause_code_id, started_at);
COMMENT ON TABLE agent_pauses IS 'Pause periods within an agent session, with their pause code.';

CREATE TABLE shifts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    activity text NOT NULL DEFAULT 'work' CHECK (activity IN (
        'work', 'break', 'lunch', 'training', 'meeting', 'time_off'
    )),
    campaign_id bigint REFERENCES campaigns (id) ON DELETE SET NULL,
    queue_id bigint REFERENCES queues (id) ON DELETE SET NULL,
    note text NOT NULL DEFAULT '',
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT shifts_ends_after_start CHECK (ends_at > starts_at)
);
CREATE INDEX shifts_user_idx ON shifts (user_id, starts_at);
CREATE INDEX shifts_starts_at_idx ON shifts (starts_at);
COMMENT ON TABLE shifts IS 'Planned schedule per agent and activity, compared with sessions.';

-- ---------------------------------------------------------------------------------------------
-- Quality
-- ---------------------------------------------------------------------------------------------

CREATE TABLE qa_scorecards (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name <> ''),
    description text NOT NULL DEFAULT '',
    -- [{"id", "label", "weight", "max_score", "critical"}, ...]
    criteria jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(criteria) = 'array'),
    passing_score numeric(5, 2) CHECK (passing_score BETWEEN 0 AND 100),
    active boolean NOT NULL DEFAULT true,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE qa_scorecards IS 'Quality scorecards: the criteria calls are evaluated against.';

CREATE TABLE qa_evaluations (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scorecard_id bigint NOT NULL REFERENCES qa_scorecards (id) ON DELETE RESTRICT,
    criteria jsonb NOT NULL CHECK (jsonb_typeof(criteria) = 'array'), -- scorecard as evaluated
    call_id bigint REFERENCES calls (id) ON DELETE SET NULL,
    agent_id bigint NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    evaluator_id bigint REFERENCES users (id) ON DELETE SET NULL,
    scores jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(scores) = 'object'), -- criterion id
    score numeric(5, 2) CHECK (score BETWEEN 0 AND 100),
    comment text NOT NULL DEFAULT '',
    status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'submitted', 'acknowledged')),
    submitted_at timestamptz,
    acknowledged_at timestamptz,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT qa_evaluations_submitted_complete
        CHECK (status = 'draft' OR (submitted_at IS NOT NULL AND score IS NOT NULL)),
    CONSTRAINT qa_evaluations_acknowledged_at_set
        CHECK ((status = 'acknowledged') = (acknowledged_at IS NOT NULL))
);
CREATE INDEX qa_evaluations_agent_idx ON qa_evaluations (agent_id, created_at);
CREATE INDEX qa_evaluations_call_idx ON qa_evaluations (call_id);
CREATE INDEX qa_evaluations_scorecard_idx ON qa_evaluations (scorecard_id, created_at);
COMMENT ON TABLE qa_evaluations IS 'A scored evaluation of one agent, usually on one call.';

-- ---------------------------------------------------------------------------------------------
-- Monitoring
-- ---------------------------------------------------------------------------------------------

CREATE TABLE alert_channels (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name <> ''),
    kind text NOT NULL, -- the alert-channel plugin's name
    params jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(params) = 'object'), -- non-secret
    secrets_encrypted bytea, -- Fernet ciphertext of a JSON object of tokens and passwords
    active boolean NOT NULL DEFAULT true,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE alert_channels IS 'Where alerts are sent (e-mail, chat, SMS...), with secrets.';

CREATE TABLE alert_rules (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name <> ''),
    description text NOT NULL DEFAULT '',
    metric text NOT NULL, -- e.g. abandon_rate, queue_wait_seconds, trunk_down
    campaign_id bigint REFERENCES campaigns (id) ON DELETE CASCADE, -- NULL: any campaign
    queue_id bigint REFERENCES queues (id) ON DELETE CASCADE, -- NULL: any queue
    trunk_id bigint REFERENCES sip_trunks (id) ON DELETE CASCADE, -- NULL: any trunk
    operator text NOT NULL CHECK (operator IN ('>', '>=', '<', '<=', '=', '<>')),
    threshold numeric NOT NULL,
    window_seconds integer NOT NULL DEFAULT 300 CHECK (window_seconds > 0),
    severity text NOT NULL DEFAULT 'warning' CHECK (severity IN ('info', 'warning', 'critical')),
    cooldown_seconds integer NOT NULL DEFAULT 900 CHECK (cooldown_seconds >= 0),
    enabled boolean NOT NULL DEFAULT true,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE alert_rules IS 'Conditions on a metric that raise an alert, and how loudly.';

CREATE TABLE alert_rule_channels (
    rule_id bigint NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    channel_id bigint NOT NULL REFERENCES alert_channels (id) ON DELETE CASCADE,
    PRIMARY KEY (rule_id, channel_id)
);
CREATE INDEX alert_rule_channels_channel_idx ON alert_rule_channels (channel_id);
COMMENT ON TABLE alert_rule_channels IS 'Which channels an alert rule notifies.';

CREATE TABLE alert_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id bigint REFERENCES alert_rules (id) ON DELETE SET NULL,
    rule_name text NOT NULL, -- kept for history after the rule is gone
    severity text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    value numeric,
    message text NOT NULL,
    details jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object'),
    fired_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by bigint REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT alert_events_resolved_after_fired CHECK (resolved_at >= fired_at),
    CONSTRAINT alert_events_acknowledged_after_fired CHECK (acknowledged_at >= fired_at)
);
CREATE UNIQUE INDEX alert_events_one_firing ON alert_events (rule_id)
    WHERE resolved_at IS NULL AND rule_id IS NOT NULL;
CREATE INDEX alert_events_fired_at_idx ON alert_events (fired_at);
COMMENT ON TABLE alert_events IS 'Alerts raised by the rules: firing until resolved.';

-- ---------------------------------------------------------------------------------------------
-- Operations
-- ---------------------------------------------------------------------------------------------

CREATE TABLE audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor_id bigint REFERENCES users (id) ON DELETE SET NULL, -- NULL: the system
    actor_label text NOT NULL,
    action text NOT NULL,
    entity_type text NOT NULL,
    entity_id text,
    before jsonb,
    after jsonb,
    ip inet
);
CREATE INDEX audit_log_entity_idx ON audit_log (entity_type, entity_id, at);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, at);
COMMENT ON TABLE audit_log IS 'Who changed what and when, with the before and after.';

CREATE TABLE backups (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL DEFAULT 'manual' CHECK (kind IN ('manual', 'scheduled')),
    path text NOT NULL,
    size_bytes bigint CHECK (size_bytes >= 0),
    sha256 text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
    error text,
    requested_by bigint REFERENCES users (id) ON DELETE SET NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    CONSTRAINT backups_finished_iff_done CHECK ((status = 'running') = (finished_at IS NULL)),
    CONSTRAINT backups_finished_after_start CHECK (finished_at >= started_at)
);
CREATE UNIQUE INDEX backups_one_running ON backups ((true)) WHERE status = 'running';
CREATE INDEX backups_started_at_idx ON backups (started_at);
COMMENT ON TABLE backups IS 'Database backups taken: file, size, status, start and end.';

-- ---------------------------------------------------------------------------------------------
-- version / updated_at maintenance for every admin-edited table
-- ---------------------------------------------------------------------------------------------

SELECT callcore_track_versions(tbl)
FROM unnest(ARRAY[
    'users', 'groups', 'settings', 'public_holidays', 'disposition_groups', 'dispositions',
    'pause_codes', 'flows', 'flow_versions', 'scripts', 'script_versions', 'sip_trunks',
    'caller_id_numbers', 'dids', 'queues', 'queue_members', 'phones', 'voicemail_boxes',
    'dnc_lists', 'campaigns', 'contact_lists', 'leads', 'dnc_entries', 'shifts',
    'qa_scorecards', 'qa_evaluations', 'alert_channels', 'alert_rules'
]::regclass[]) AS tbl;
