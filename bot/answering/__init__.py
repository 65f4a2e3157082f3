"""Answering: the extractive (offline) and LLM answerers, the prompt's sources block and the citation check."""
