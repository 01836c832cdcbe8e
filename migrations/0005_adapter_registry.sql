-- The SFT loop's memory: every LoRA adapter a cycle trained (or an operator offered), how it scored, and which
-- one serves; every cycle, the examples it used and its gate decision. Promotions and rollbacks are events, so
-- who changed the serving adapter and when is never overwritten.

CREATE TABLE sft_adapters (
    name         text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    base_model   text NOT NULL,
    path         text NOT NULL,
    parent       text REFERENCES sft_adapters (name),  -- the adapter training continued from (null: a fresh LoRA)
    dataset_hash text NOT NULL DEFAULT '',
    dataset_size integer NOT NULL DEFAULT 0 CHECK (dataset_size >= 0),
    train_config jsonb NOT NULL DEFAULT '{}',
    metrics      jsonb NOT NULL DEFAULT '{}',
    status       text NOT NULL DEFAULT 'candidate'
                 CHECK (status IN ('candidate', 'serving', 'retired', 'rejected')),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    promoted_by  text,
    promoted_at  timestamptz
);
-- At most one adapter serves: a second promotion in parallel fails instead of leaving two.
CREATE UNIQUE INDEX sft_adapters_one_serving ON sft_adapters (status) WHERE status = 'serving';

CREATE TABLE sft_adapter_events (
    id      bigserial PRIMARY KEY,
    adapter text NOT NULL REFERENCES sft_adapters (name),
    action  text NOT NULL CHECK (action IN ('registered', 'promoted', 'rolled_back', 'rejected')),
    actor   text NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    detail  jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX sft_adapter_events_adapter_idx ON sft_adapter_events (adapter, id);

CREATE TABLE sft_cycles (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    state       text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'passed', 'promoted', 'rejected')),
    stage       text NOT NULL DEFAULT 'collected',
    data_key    text NOT NULL,  -- hash of the example keys (or the offered adapter): the same input is not re-run
    candidate   text REFERENCES sft_adapters (name),
    started_by  text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    decision    jsonb NOT NULL DEFAULT '{}'
);
-- One cycle at a time: an interrupted cycle is resumed, never started twice.
CREATE UNIQUE INDEX sft_cycles_one_open ON sft_cycles (state) WHERE state = 'open';

CREATE TABLE sft_cycle_examples (
    cycle_id   bigint NOT NULL REFERENCES sft_cycles (id) ON DELETE CASCADE,
    key        text NOT NULL,      -- sha256 of the normalised example text
    message_id bigint,             -- the rated answer it came from; null for curated examples
    lang       text NOT NULL,
    liked      boolean NOT NULL DEFAULT true,  -- false: a 👎 answer, used only by preference training (KTO)
    example    jsonb NOT NULL,     -- {"messages": [...], "source": ..., "group": ..., "lang": ..., "liked": ...}
    PRIMARY KEY (cycle_id, key)
);
CREATE INDEX sft_cycle_examples_key_idx ON sft_cycle_examples (key);
