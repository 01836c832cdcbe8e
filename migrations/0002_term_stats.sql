-- Document frequency of every search term, so keyword search can start from a query's rarest terms instead of
-- ranking every chunk that contains any of its words. Kept exact by statement-level triggers on `chunks`:
-- every insert adds its chunks' distinct lexemes (`tsv`), every delete (also cascading from `documents`)
-- subtracts them. Chunks are never updated in place (a document is replaced by delete + insert).
-- Keyword search reads `tsv` of every candidate chunk: keep it in the heap row (compressed if need be) rather
-- than in the TOAST table, so a candidate costs one page instead of a TOAST index lookup and two more pages
-- (the embedding and the text move out of line first). Applies to rows written from now on.
ALTER TABLE chunks ALTER COLUMN tsv SET STORAGE MAIN;

CREATE TABLE term_stats (
    term text PRIMARY KEY,
    df   integer NOT NULL CHECK (df > 0)
);

-- Writers serialise on a transaction-level advisory lock before touching term_stats: concurrent document
-- replacements then wait for each other here instead of deadlocking on rows of common terms.
CREATE FUNCTION chunks_count_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7310272002);
    IF TG_OP = 'INSERT' THEN
        INSERT INTO term_stats AS s (term, df)
        SELECT t.lexeme, count(*) FROM inserted_chunks c, unnest(c.tsv) t GROUP BY t.lexeme
        ON CONFLICT (term) DO UPDATE SET df = s.df + EXCLUDED.df;
    ELSE
        WITH gone AS (
            SELECT t.lexeme, count(*) AS n FROM deleted_chunks c, unnest(c.tsv) t GROUP BY t.lexeme
        ), lowered AS (  -- a data-modifying CTE runs even unreferenced; both see the same rows, disjointly
            UPDATE term_stats s SET df = s.df - gone.n FROM gone WHERE s.term = gone.lexeme AND s.df > gone.n
        )
        DELETE FROM term_stats s USING gone WHERE s.term = gone.lexeme AND s.df <= gone.n;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER chunks_terms_inserted AFTER INSERT ON chunks
    REFERENCING NEW TABLE AS inserted_chunks FOR EACH STATEMENT EXECUTE FUNCTION chunks_count_terms();
CREATE TRIGGER chunks_terms_deleted AFTER DELETE ON chunks
    REFERENCING OLD TABLE AS deleted_chunks FOR EACH STATEMENT EXECUTE FUNCTION chunks_count_terms();

INSERT INTO term_stats (term, df)
SELECT t.lexeme, count(*) FROM chunks c, unnest(c.tsv) t GROUP BY t.lexeme;
