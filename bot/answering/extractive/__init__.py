"""The offline, extractive answerer: what the question asks for (`asked`), candidate answers of that kind in the
sentences (`spans`, `names`), the reader that picks one or refuses (`reader`), and the answerer (`answerer`)."""

from bot.answering.extractive.answerer import ExtractiveAnswerer, condense_question

__all__ = ["ExtractiveAnswerer", "condense_question"]
