-- The support desk: how the bot behaves per channel, where each scope hands questions over to people, the
-- hand-overs themselves, and the answers people gave that an admin or supporter saved as curated knowledge.

-- Per-channel behaviour set from chat (overrides DESK_CHANNEL_MODES in settings).
CREATE TABLE desk_channels (
    platform   text NOT NULL,
    workspace  text NOT NULL,
    channel    text NOT NULL,
    mode       text NOT NULL CHECK (mode IN ('mention', 'questions', 'threads')),
    language   text NOT NULL DEFAULT '' CHECK (language IN ('', 'en', 'zh')),
    updated_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, workspace, channel)
);

-- Per-scope answer footer (overrides DESK_SCOPES in settings).
CREATE TABLE desk_scopes (
    scope      text PRIMARY KEY,
    footer     text NOT NULL DEFAULT '',
    updated_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Where a scope's questions go to people, per platform: a channel and the group (Slack user group, Discord role)
-- to mention there.
CREATE TABLE desk_handover_targets (
    scope         text NOT NULL,
    platform      text NOT NULL,
    channel       text NOT NULL,
    support_group text NOT NULL DEFAULT '',
    updated_by    text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, platform)
);

-- One hand-over per answered message, whatever triggered it first (not found, a 👎, the "Ask a person" button).
CREATE TABLE escalations (
    id             bigserial PRIMARY KEY,
    message_id     bigint NOT NULL UNIQUE REFERENCES messages (id) ON DELETE CASCADE,
    reason         text NOT NULL CHECK (reason IN ('not_found', 'thumbs_down', 'asked')),
    platform       text NOT NULL,
    scope          text NOT NULL,
    requested_by   text NOT NULL,
    channel        text NOT NULL,
    post_ref       text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX escalations_post_idx ON escalations (platform, channel, post_ref);
CREATE INDEX escalations_created_at_idx ON escalations (created_at);

-- Question + a person's reply, saved by an explicit admin/supporter action: a document in the scope and a curated
-- SFT example.
CREATE TABLE curated_answers (
    id            bigserial PRIMARY KEY,
    escalation_id bigint UNIQUE REFERENCES escalations (id) ON DELETE SET NULL,
    scope         text NOT NULL,
    question      text NOT NULL,
    answer        text NOT NULL,
    document_id   bigint REFERENCES documents (id) ON DELETE SET NULL,
    saved_by      text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- The report reads a time window of messages.
CREATE INDEX messages_created_at_idx ON messages (created_at);
