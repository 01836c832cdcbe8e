-- Lorebot initial schema. {{EMBEDDING_DIM}} is replaced by the configured embedding dimension the first time
-- this runs; the value is recorded in lorebot_meta and checked on every start.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE lorebot_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO lorebot_meta (key, value) VALUES ('embedding_dim', '{{EMBEDDING_DIM}}');

-- Knowledge scopes (collections). Documents belong to exactly one scope; retrieval is limited to scopes.
CREATE TABLE scopes (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE documents (
    id           bigserial PRIMARY KEY,
    scope        text NOT NULL REFERENCES scopes (name),
    source_uri   text NOT NULL,
    title        text NOT NULL,
    mime_type    text NOT NULL,
    content_hash text NOT NULL,
    size_bytes   bigint NOT NULL CHECK (size_bytes >= 0),
    chunk_count  integer NOT NULL DEFAULT 0,
    added_by     text NOT NULL,
    added_at     timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (scope, source_uri)
);
CREATE INDEX documents_content_hash_idx ON documents (scope, content_hash);

-- Chunks. `lexemes` holds extra search terms computed in Python (CJK character bigrams), indexed with the
-- `simple` configuration next to the English words of `text`.
CREATE TABLE chunks (
    id          bigserial PRIMARY KEY,
    document_id bigint NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    scope       text NOT NULL,
    ordinal     integer NOT NULL,
    heading     text NOT NULL DEFAULT '',
    text        text NOT NULL,
    lexemes     text NOT NULL DEFAULT '',
    token_count integer NOT NULL DEFAULT 0,
    embedding   vector({{EMBEDDING_DIM}}) NOT NULL,
    tsv         tsvector GENERATED ALWAYS AS (
                    to_tsvector('english', text) || to_tsvector('simple', lexemes)
                ) STORED,
    UNIQUE (document_id, ordinal)
);
CREATE INDEX chunks_embedding_hnsw ON chunks USING hnsw (embedding vector_cosine_ops)
    WITH (m = 16, ef_construction = 64);
CREATE INDEX chunks_tsv_gin ON chunks USING gin (tsv);
CREATE INDEX chunks_scope_idx ON chunks (scope);

-- One transcript per (platform, workspace/guild, channel, thread).
CREATE TABLE conversations (
    id         bigserial PRIMARY KEY,
    platform   text NOT NULL,
    workspace  text NOT NULL,
    channel    text NOT NULL,
    thread     text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (platform, workspace, channel, thread)
);

CREATE TABLE messages (
    id                  bigserial PRIMARY KEY,
    conversation_id     bigint REFERENCES conversations (id) ON DELETE CASCADE,
    platform            text NOT NULL,
    user_id             text NOT NULL,
    user_name           text NOT NULL DEFAULT '',
    question            text NOT NULL,
    search_query        text NOT NULL DEFAULT '',
    answer              text NOT NULL,
    found               boolean NOT NULL,
    scopes              text[] NOT NULL,
    retrieved_chunk_ids bigint[] NOT NULL DEFAULT '{}',
    cited_chunk_ids     bigint[] NOT NULL DEFAULT '{}',
    -- the exact numbered context and system prompt the model saw, so SFT can rebuild the example
    prompt_context      text NOT NULL DEFAULT '',
    model               text NOT NULL,
    latency_ms          integer NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_conversation_idx ON messages (conversation_id, id);

CREATE TABLE feedback (
    id         bigserial PRIMARY KEY,
    message_id bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    platform   text NOT NULL,
    user_id    text NOT NULL,
    score      smallint NOT NULL CHECK (score IN (-1, 1)),
    comment    text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (message_id, platform, user_id)
);

CREATE TABLE audit_log (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    platform  text NOT NULL,
    user_id   text NOT NULL,
    user_name text NOT NULL DEFAULT '',
    action    text NOT NULL,
    target    text NOT NULL DEFAULT '',
    allowed   boolean NOT NULL,
    detail    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at_idx ON audit_log (at);

-- Platform event ids already claimed by some bot process: every event is answered exactly once, also across
-- replicas and restarts.
CREATE TABLE processed_events (
    platform   text NOT NULL,
    event_id   text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, event_id)
);
