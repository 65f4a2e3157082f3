"""Retrieval: hybrid search (dense + BM25, fused), diversity, optional recency and reranking."""
