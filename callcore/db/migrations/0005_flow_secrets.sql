-- 0005_flow_secrets: secret node params (a webhook's API key) kept apart from the graph.
--
-- A version's graph holds a mask in place of each secret string, so whatever reads graphs (the
-- flows API, exports, the audit log) never sees one. The values are here, as Fernet ciphertext:
-- node id -> param -> token, or -> key -> token for an object of secrets (callcore/ivr/secrets.py).
-- Only the engine decrypts them, when it compiles a published version.

ALTER TABLE flow_versions
    ADD COLUMN secrets jsonb NOT NULL DEFAULT '{}'
        CONSTRAINT flow_versions_secrets_object CHECK (jsonb_typeof(secrets) = 'object');
