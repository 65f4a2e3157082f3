"""Storage: the catalog interface and its backends, and the store that keeps vectors and catalog in step."""
