"""The SQLite catalog's own tables, as named migrations: append new ones, never edit old ones (a live database
has applied them). Features that keep state (web, Slack) declare theirs beside their code."""

from __future__ import annotations

import sqlite3

from ingest.storage.catalog import Migration

CORE_MIGRATIONS = [
    Migration(
        "001_articles_chunks",
        """
        CREATE TABLE articles (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            url TEXT,
            path TEXT,
            source TEXT,
            author TEXT,
            published_at TEXT,
            published_ts REAL,
            hash TEXT NOT NULL,
            text TEXT NOT NULL,
            ingested_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX articles_url ON articles(url);
        CREATE INDEX articles_source ON articles(source);
        CREATE INDEX articles_published ON articles(published_ts);
        CREATE TABLE article_paths (
            path TEXT NOT NULL,
            article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
            PRIMARY KEY (path, article_id)
        );
        CREATE TABLE chunks (
            rowid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            collection TEXT NOT NULL,
            article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            start_char INTEGER NOT NULL,
            end_char INTEGER NOT NULL,
            text TEXT NOT NULL,
            token_count INTEGER NOT NULL
        );
        CREATE INDEX chunks_article ON chunks(collection, article_id);
        -- which version (hash) of each article a collection's vectors hold
        CREATE TABLE indexed (
            collection TEXT NOT NULL,
            article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
            hash TEXT NOT NULL,
            PRIMARY KEY (collection, article_id)
        );
        -- articles whose vectors are being written: reconciled with the vector store on the next open
        CREATE TABLE pending_writes (
            collection TEXT NOT NULL,
            article_id TEXT NOT NULL,
            hash TEXT NOT NULL,
            started_at TEXT NOT NULL,
            PRIMARY KEY (collection, article_id)
        );
        """,
    ),
    Migration(
        "004_chunks_fts",
        """
        -- The lexical (BM25) index: each chunk's text and its article's title, rowid = chunks.rowid. Triggers keep
        -- it in step with chunks inside whatever transaction changes them, cascaded deletes of articles included.
        -- It stores its own copy of the text: SQLite before 3.43 cannot delete from a contentless FTS5 table by
        -- rowid, and an external-content table would need the title, which lives in another table, at delete time.
        CREATE VIRTUAL TABLE chunks_fts USING fts5(title, text, tokenize = 'porter unicode61 remove_diacritics 2');
        INSERT INTO chunks_fts (rowid, title, text)
            SELECT c.rowid, a.title, c.text FROM chunks c JOIN articles a ON a.id = c.article_id;
        CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_fts (rowid, title, text)
                VALUES (new.rowid, (SELECT title FROM articles WHERE id = new.article_id), new.text);
        END;
        CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
            DELETE FROM chunks_fts WHERE rowid = old.rowid;
        END;
        CREATE TRIGGER chunks_fts_text AFTER UPDATE OF text ON chunks BEGIN
            UPDATE chunks_fts SET text = new.text WHERE rowid = new.rowid;
        END;
        CREATE TRIGGER articles_fts_title AFTER UPDATE OF title ON articles WHEN old.title IS NOT new.title BEGIN
            UPDATE chunks_fts SET title = new.title WHERE rowid IN (SELECT rowid FROM chunks WHERE article_id = new.id);
        END;
        """,
    ),
    Migration(
        "006_forgotten",
        """
        -- articles removed with `byline forget`: feed polls do not bring them back (an explicit ingest does)
        CREATE TABLE forgotten (article_id TEXT PRIMARY KEY, forgotten_at TEXT NOT NULL);
        """,
    ),
    Migration(
        "008_chunk_instruction_like",
        """
        -- 1 when some of the chunk's text reads like instructions to an AI (ingest.injection), 0 when none does,
        -- NULL for chunks written before this column: the answering side checks those itself
        ALTER TABLE chunks ADD COLUMN instruction_like INTEGER;
        """,
    ),
    Migration(
        "009_store_state",
        """
        -- the store's own bookkeeping: the write generation (moved before every change to the vectors, so readers
        -- holding an older view reopen it) and an unfinished reindex
        CREATE TABLE store_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        """,
    ),
    Migration(
        "010_chunk_vectors",
        """
        -- each chunk's vector (float32, little-endian) as the vector store got it, and the hash of the text
        -- embedded: a damaged vector index is restored from these without embedding again
        ALTER TABLE chunks ADD COLUMN vector BLOB;
        ALTER TABLE chunks ADD COLUMN embed_hash TEXT;
        """,
    ),
]


def statements(sql: str) -> list[str]:
    """Split a script into statements; sqlite3.complete_statement keeps trigger bodies whole."""
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    statements, current = [], ""
    for part in body.split(";"):
        current += part + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \n;"):
                statements.append(current.strip())
            current = ""
    return statements
