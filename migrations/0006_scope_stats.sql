-- Chunk count of every scope, kept exact by the same statement-level triggers as `term_stats` (0002): keyword
-- search needs to know how large the searched scopes are, against the whole corpus, to decide how many of a
-- query's terms it can afford to match (a term in 1,000 of 1M chunks is expected in 10 chunks of a 1 % scope)
-- and whether ranking the scopes' every match is cheaper than reading the corpus-wide matches of the rarest.
CREATE TABLE scope_stats (
    scope  text PRIMARY KEY,
    chunks bigint NOT NULL CHECK (chunks >= 0)
);

CREATE OR REPLACE FUNCTION chunks_count_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7310272002);
    IF TG_OP = 'INSERT' THEN
        INSERT INTO term_stats AS s (term, df)
        SELECT t.lexeme, count(*) FROM inserted_chunks c, unnest(c.tsv) t GROUP BY t.lexeme
        ON CONFLICT (term) DO UPDATE SET df = s.df + EXCLUDED.df;
        INSERT INTO scope_stats AS s (scope, chunks)
        SELECT c.scope, count(*) FROM inserted_chunks c GROUP BY c.scope
        ON CONFLICT (scope) DO UPDATE SET chunks = s.chunks + EXCLUDED.chunks;
    ELSE
        WITH gone AS (
            SELECT t.lexeme, count(*) AS n FROM deleted_chunks c, unnest(c.tsv) t GROUP BY t.lexeme
        ), lowered AS (  -- a data-modifying CTE runs even unreferenced; both see the same rows, disjointly
            UPDATE term_stats s SET df = s.df - gone.n FROM gone WHERE s.term = gone.lexeme AND s.df > gone.n
        )
        DELETE FROM term_stats s USING gone WHERE s.term = gone.lexeme AND s.df <= gone.n;
        UPDATE scope_stats s SET chunks = s.chunks - gone.n
        FROM (SELECT c.scope, count(*) AS n FROM deleted_chunks c GROUP BY c.scope) gone
        WHERE s.scope = gone.scope;
    END IF;
    RETURN NULL;
END
$$;

INSERT INTO scope_stats (scope, chunks)
SELECT scope, count(*) FROM chunks GROUP BY scope;
