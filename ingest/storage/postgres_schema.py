"""The PostgreSQL catalog's own tables, as named migrations with the names of the SQLite catalog's: append new
ones, never edit old ones (a live database has applied them). The lexical (BM25) index is designed in
ingest.storage.postgres_lexical. Features that keep state (web, Slack) declare theirs beside their code."""

from __future__ import annotations

from ingest.storage.catalog import Migration

# Characters the default text search parser would read as part of a special token (hyphenated words, signed
# numbers, decimals, hosts, URLs, paths, e-mail addresses, tags, entities) become spaces, so it yields plain runs of
# letters and digits as FTS5's unicode61 does. Other punctuation is already a separator to the parser in a UTF-8
# database; the common Unicode marks are replaced too, for databases whose LC_CTYPE is C. Chained replace() rather
# than one regexp over Unicode ranges: this runs in every chunk write, and PostgreSQL's regexps are slow.
_SEPARATORS = ".-/@:+<&\\’‘“”—–…\u00a0«»·"


def _spaced(expression: str) -> str:
    """SQL turning each separator in `expression` into a space (chained replace: a fast search per character)."""
    for char in _SEPARATORS:
        expression = f"replace({expression}, '{char}', ' ')"
    return expression


CORE_MIGRATIONS = [
    Migration(
        "001_articles_chunks",
        # As in the SQLite catalog, plus `source_key`: the outlet as filters compare it, written by the
        # application (Python's casefold is not PostgreSQL's lower).
        postgres="""
        CREATE TABLE articles (
            id text PRIMARY KEY,
            title text NOT NULL,
            url text,
            path text,
            source text,
            source_key text NOT NULL DEFAULT '',
            author text,
            published_at text,
            published_ts double precision,
            hash text NOT NULL,
            text text NOT NULL,
            ingested_at text NOT NULL,
            updated_at text NOT NULL
        );
        CREATE INDEX articles_url ON articles (url);
        CREATE INDEX articles_source_key ON articles (source_key);
        CREATE INDEX articles_published ON articles (published_ts);
        CREATE TABLE article_paths (
            path text NOT NULL,
            article_id text NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
            PRIMARY KEY (path, article_id)
        );
        CREATE INDEX article_paths_article ON article_paths (article_id);
        CREATE TABLE chunks (
            rowid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id text NOT NULL UNIQUE,
            collection text NOT NULL,
            article_id text NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
            position integer NOT NULL,
            start_char integer NOT NULL,
            end_char integer NOT NULL,
            text text NOT NULL,
            token_count integer NOT NULL
        );
        CREATE INDEX chunks_article ON chunks (article_id, collection);
        CREATE TABLE indexed (
            collection text NOT NULL,
            article_id text NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
            hash text NOT NULL,
            PRIMARY KEY (collection, article_id)
        );
        CREATE INDEX indexed_article ON indexed (article_id);
        -- articles whose vectors are being written: reconciled with the vector store on the next open
        CREATE TABLE pending_writes (
            collection text NOT NULL,
            article_id text NOT NULL,
            hash text NOT NULL,
            started_at text NOT NULL,
            PRIMARY KEY (collection, article_id)
        );
        """,
    ),
    Migration(
        "004_chunks_fts",
        # The lexical (BM25) index: see ingest.storage.postgres_lexical.
        postgres=f"""
        CREATE EXTENSION IF NOT EXISTS unaccent;
        CREATE TEXT SEARCH DICTIONARY byline_porter (TEMPLATE = snowball, Language = porter);
        CREATE TEXT SEARCH CONFIGURATION byline_lexical (PARSER = pg_catalog.default);
        ALTER TEXT SEARCH CONFIGURATION byline_lexical
            ADD MAPPING FOR asciiword, word, numword, asciihword, hword, numhword, hword_asciipart, hword_part,
                hword_numpart
            WITH unaccent, byline_porter;
        ALTER TEXT SEARCH CONFIGURATION byline_lexical ADD MAPPING FOR int, uint, float, sfloat, version WITH simple;

        CREATE FUNCTION byline_lexemes(body text) RETURNS tsvector
            LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
            RETURN to_tsvector('byline_lexical'::regconfig, {_spaced("body")});
        CREATE FUNCTION byline_token_count(lexemes tsvector) RETURNS integer
            LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
            RETURN (SELECT coalesce(sum(cardinality(positions)), 0) FROM unnest(lexemes));

        -- set by a trigger: the chunk's lexemes and its length in tokens (title and text)
        ALTER TABLE chunks ADD COLUMN lexemes tsvector NOT NULL DEFAULT '',
            ADD COLUMN lexical_length integer NOT NULL DEFAULT 0;
        CREATE TABLE lexical_collections (
            id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name text NOT NULL UNIQUE,
            chunks bigint NOT NULL DEFAULT 0,
            tokens bigint NOT NULL DEFAULT 0
        );
        -- Lexemes of a collection by number (the postings' keys). Rows are only ever added: how many chunks hold a
        -- lexeme is counted from the postings when a query needs it, so writers never rewrite shared rows.
        CREATE TABLE lexical_terms (
            id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            collection_id integer NOT NULL REFERENCES lexical_collections (id),
            lexeme text COLLATE "C" NOT NULL,
            UNIQUE (collection_id, lexeme)
        );
        -- The inverted index: integer keys, and everything single-word BM25 needs in the index itself. The
        -- positions (in the heap) are only read for phrases: title positions come first in the chunk's tsvector,
        -- so a lexeme's positions split at its title hits.
        CREATE TABLE lexical_postings (
            term_id integer NOT NULL,
            chunk bigint NOT NULL,
            title_hits smallint NOT NULL,
            text_hits smallint NOT NULL,
            length integer NOT NULL,
            title_positions smallint[],
            text_positions smallint[] NOT NULL,
            PRIMARY KEY (term_id, chunk) INCLUDE (title_hits, text_hits, length)
        );

        CREATE FUNCTION lexical_collection_ids(names text[]) RETURNS integer[]
            LANGUAGE sql STABLE
            RETURN (SELECT array_agg(lc.id ORDER BY n.i) FROM unnest(names) WITH ORDINALITY AS n (name, i)
                    JOIN lexical_collections lc ON lc.name = n.name);
        -- Take chunks out of / into the lexical index, given their (collection, rowid, lexemes). Row estimates of
        -- unnested arrays are guesses, so plans are pinned: no JIT (compiling for a guessed cost took longer than
        -- the work), term ids looked up per lexeme (LATERAL), and postings deleted by key, one index probe each
        -- (allowed a hash join, the planner read the whole table instead, at a cost growing with the index).
        CREATE FUNCTION lexical_remove(collections text[], rowids bigint[], vectors tsvector[], lengths integer[])
            RETURNS void
            LANGUAGE plpgsql SET jit = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
            DECLARE
                collection_ids integer[] := lexical_collection_ids(collections);
                term_ids integer[];
                chunks bigint[];
            BEGIN
                SELECT array_agg(t.id), array_agg(g.rowid) INTO term_ids, chunks
                FROM unnest(collection_ids, rowids, vectors) AS g (collection_id, rowid, lexemes)
                CROSS JOIN unnest(g.lexemes) u
                CROSS JOIN LATERAL (SELECT id FROM lexical_terms t
                                    WHERE t.collection_id = g.collection_id AND t.lexeme = u.lexeme COLLATE "C") t;
                DELETE FROM lexical_postings p USING unnest(term_ids, chunks) AS k (term_id, chunk)
                WHERE p.term_id = k.term_id AND p.chunk = k.chunk;
                UPDATE lexical_collections lc SET chunks = lc.chunks - s.n, tokens = lc.tokens - s.tokens
                FROM (SELECT g.collection, count(*) AS n, sum(g.length) AS tokens
                      FROM unnest(collections, lengths) AS g (collection, length) GROUP BY 1) s
                WHERE lc.name = s.collection;
            END $$;
        CREATE FUNCTION lexical_add(collections text[], rowids bigint[], vectors tsvector[], lengths integer[])
            RETURNS void
            LANGUAGE plpgsql SET jit = off AS $$
            DECLARE
                collection_ids integer[];
            BEGIN
                INSERT INTO lexical_collections (name)
                    SELECT DISTINCT c FROM unnest(collections) c ORDER BY 1 ON CONFLICT (name) DO NOTHING;
                collection_ids := lexical_collection_ids(collections);
                INSERT INTO lexical_terms (collection_id, lexeme)
                    SELECT DISTINCT g.collection_id, u.lexeme COLLATE "C"
                    FROM unnest(collection_ids, vectors) AS g (collection_id, lexemes) CROSS JOIN unnest(g.lexemes) u
                    ORDER BY 1, 2
                    ON CONFLICT (collection_id, lexeme) DO NOTHING;
                -- in key order: each term's new postings go to the end of its run in the index
                INSERT INTO lexical_postings
                    SELECT t.id, a.rowid, h.title_hits, cardinality(u.positions) - h.title_hits, a.length,
                           CASE WHEN h.title_hits > 0 THEN u.positions[:h.title_hits] END,
                           u.positions[h.title_hits + 1:]
                    FROM unnest(collection_ids, rowids, vectors, lengths) AS a (collection_id, rowid, lexemes, length)
                    CROSS JOIN unnest(a.lexemes) u
                    CROSS JOIN LATERAL (SELECT cardinality(array_positions(u.weights, 'A')) AS title_hits) h
                    CROSS JOIN LATERAL (SELECT id FROM lexical_terms t
                                        WHERE t.collection_id = a.collection_id AND t.lexeme = u.lexeme COLLATE "C") t
                    ORDER BY t.id, a.rowid;
                UPDATE lexical_collections lc SET chunks = lc.chunks + s.n, tokens = lc.tokens + s.tokens
                FROM (SELECT g.collection, count(*) AS n, sum(g.length) AS tokens
                      FROM unnest(collections, lengths) AS g (collection, length) GROUP BY 1) s
                WHERE lc.name = s.collection;
            END $$;

        CREATE FUNCTION chunks_lexemes() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                NEW.lexemes := setweight(byline_lexemes(coalesce(
                                   (SELECT title FROM articles WHERE id = NEW.article_id), '')), 'A')
                               || setweight(byline_lexemes(NEW.text), 'D');
                NEW.lexical_length := byline_token_count(NEW.lexemes);
                RETURN NEW;
            END $$;
        CREATE TRIGGER chunks_lexemes BEFORE INSERT OR UPDATE ON chunks
            FOR EACH ROW EXECUTE FUNCTION chunks_lexemes();
        CREATE FUNCTION chunks_lexical_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM lexical_add(
                    array_agg(collection), array_agg(rowid), array_agg(lexemes), array_agg(lexical_length)
                ) FROM new_chunks;
                RETURN NULL;
            END $$;
        CREATE FUNCTION chunks_lexical_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM lexical_remove(
                    array_agg(collection), array_agg(rowid), array_agg(lexemes), array_agg(lexical_length)
                ) FROM old_chunks;
                RETURN NULL;
            END $$;
        CREATE FUNCTION chunks_lexical_updated() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM lexical_remove(
                    array_agg(collection), array_agg(rowid), array_agg(lexemes), array_agg(lexical_length)
                ) FROM old_chunks;
                PERFORM lexical_add(
                    array_agg(collection), array_agg(rowid), array_agg(lexemes), array_agg(lexical_length)
                ) FROM new_chunks;
                RETURN NULL;
            END $$;
        CREATE TRIGGER chunks_lexical_inserted AFTER INSERT ON chunks REFERENCING NEW TABLE AS new_chunks
            FOR EACH STATEMENT EXECUTE FUNCTION chunks_lexical_inserted();
        CREATE TRIGGER chunks_lexical_deleted AFTER DELETE ON chunks REFERENCING OLD TABLE AS old_chunks
            FOR EACH STATEMENT EXECUTE FUNCTION chunks_lexical_deleted();
        CREATE TRIGGER chunks_lexical_updated AFTER UPDATE ON chunks
            REFERENCING OLD TABLE AS old_chunks NEW TABLE AS new_chunks
            FOR EACH STATEMENT EXECUTE FUNCTION chunks_lexical_updated();
        -- A new title: its article's chunks are rewritten, and the triggers above re-index them.
        CREATE FUNCTION articles_lexical_title() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE chunks SET lexemes = '' WHERE article_id = NEW.id;
                RETURN NULL;
            END $$;
        CREATE TRIGGER articles_lexical_title AFTER UPDATE OF title ON articles
            FOR EACH ROW WHEN (OLD.title IS DISTINCT FROM NEW.title) EXECUTE FUNCTION articles_lexical_title();
        """,
    ),
    Migration(
        "006_forgotten",
        postgres="""
        -- articles removed with `byline forget`: feed polls do not bring them back (an explicit ingest does)
        CREATE TABLE forgotten (article_id text PRIMARY KEY, forgotten_at text NOT NULL);
        """,
    ),
    Migration(
        "008_chunk_instruction_like",
        postgres="""
        -- 1 when some of the chunk's text reads like instructions to an AI (ingest.injection), 0 when none does,
        -- NULL for chunks written before this column: the answering side checks those itself
        ALTER TABLE chunks ADD COLUMN instruction_like integer;
        """,
    ),
    Migration(
        "009_store_state",
        postgres="""
        -- the store's own bookkeeping: the write generation (moved before every change to the vectors, so readers
        -- holding an older view reopen it) and an unfinished reindex
        CREATE TABLE store_state (key text PRIMARY KEY, value text NOT NULL);
        """,
    ),
    Migration(
        "010_chunk_vectors",
        # Keeping vectors updates chunks: the lexical triggers now re-index only chunks whose lexemes change.
        postgres="""
        -- each chunk's vector (float32, little-endian) as the vector store got it, and the hash of the text
        -- embedded: a damaged vector index is restored from these without embedding again
        ALTER TABLE chunks ADD COLUMN vector bytea, ADD COLUMN embed_hash text;
        CREATE OR REPLACE FUNCTION chunks_lexemes() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'UPDATE' AND NEW.text IS NOT DISTINCT FROM OLD.text AND NEW.lexemes <> ''
                   AND NEW.lexemes IS NOT DISTINCT FROM OLD.lexemes THEN
                    RETURN NEW;
                END IF;
                NEW.lexemes := setweight(byline_lexemes(coalesce(
                                   (SELECT title FROM articles WHERE id = NEW.article_id), '')), 'A')
                               || setweight(byline_lexemes(NEW.text), 'D');
                NEW.lexical_length := byline_token_count(NEW.lexemes);
                RETURN NEW;
            END $$;
        CREATE OR REPLACE FUNCTION chunks_lexical_updated() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM lexical_remove(
                    array_agg(o.collection), array_agg(o.rowid), array_agg(o.lexemes), array_agg(o.lexical_length)
                ) FROM old_chunks o JOIN new_chunks n ON n.rowid = o.rowid
                WHERE (o.collection, o.lexemes, o.lexical_length) IS DISTINCT FROM
                      (n.collection, n.lexemes, n.lexical_length)
                HAVING count(*) > 0;
                PERFORM lexical_add(
                    array_agg(n.collection), array_agg(n.rowid), array_agg(n.lexemes), array_agg(n.lexical_length)
                ) FROM old_chunks o JOIN new_chunks n ON n.rowid = o.rowid
                WHERE (o.collection, o.lexemes, o.lexical_length) IS DISTINCT FROM
                      (n.collection, n.lexemes, n.lexical_length)
                HAVING count(*) > 0;
                RETURN NULL;
            END $$;
        """,
    ),
]
