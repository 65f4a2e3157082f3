"""The web as a source: polite fetching, page extraction, feeds, sitemaps, and what is remembered of them."""
