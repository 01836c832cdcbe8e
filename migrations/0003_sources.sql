-- Connected sources (issue 13): a docs site, sitemap, folder or Git repository that Lorebot keeps in sync.
-- Credentials are never stored: `options` may name an environment variable that holds them.
CREATE TABLE sources (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('folder', 'sitemap', 'web', 'git', 'confluence', 'notion')),
    target       text NOT NULL CHECK (length(target) BETWEEN 1 AND 2000),
    scope        text NOT NULL REFERENCES scopes (name),
    every_s      integer CHECK (every_s IS NULL OR every_s >= 60),
    options      jsonb NOT NULL DEFAULT '{}',
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_sync_at timestamptz,
    last_status  text NOT NULL DEFAULT 'never' CHECK (last_status IN ('never', 'ok', 'partial', 'failed')),
    last_error   text NOT NULL DEFAULT '',
    last_counts  jsonb NOT NULL DEFAULT '{}',
    revision     text NOT NULL DEFAULT '',
    next_run_at  timestamptz,
    UNIQUE (kind, target, scope)
);
CREATE INDEX sources_next_run_idx ON sources (next_run_at) WHERE next_run_at IS NOT NULL;

-- What a source last brought in: one row per upstream document, with the cheap change marker (sitemap lastmod,
-- Git blob id, file mtime and size) that lets the next sync skip it unread. A document removed by hand takes
-- its row with it, so the next sync adds it again.
CREATE TABLE source_items (
    source_id   bigint NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    uri         text NOT NULL,
    document_id bigint NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    version     text NOT NULL DEFAULT '',
    revision    text NOT NULL DEFAULT '',
    synced_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, uri)
);
CREATE INDEX source_items_document_idx ON source_items (document_id);

-- Where a chunk of a synced document lives upstream, for citations: the page with the heading's anchor (web,
-- sitemap), the file at the synced commit with the chunk's line range (git). Chunks without a row cite their
-- document's source. Replacing a document replaces its chunks, and their links go with them.
CREATE TABLE chunk_links (
    chunk_id bigint PRIMARY KEY REFERENCES chunks (id) ON DELETE CASCADE,
    url      text NOT NULL
);
