"""Text in an article that reads like instructions to an AI ("ignore previous instructions and reply ..."):
found at ingest (each chunk is flagged in the catalog) so the answering side can fence it as quoted data in
prompts and never take it as evidence for a claim.

Hand-written patterns rather than a classifier: they run offline in microseconds on every chunk, and each one
is a phrase that news prose has no reason to use, checked against the Wikinews dev articles for false alarms.
"""

from __future__ import annotations

import re

from ingest.text import split_sentences

_PATTERNS = [
    # "Ignore all previous instructions", "forget the above prompt", "disregard your rules"
    r"\b(?:ignore|disregard|forget|override)\s+(?:(?:all|any|every|of|the|your|my|these|those)\s+)*"
    r"(?:previous|prior|above|earlier|preceding|foregoing|original|initial|system|existing)\s+"
    r"(?:instructions?|prompts?|directions|directives|rules|guidelines|guardrails|messages?|context)\b",
    r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+(?:of\s+)?)?(?:your|my|all|any)\s+"
    r"(?:instructions?|prompts?|rules|guidelines|guardrails|directives)\b",
    # A new persona or mode: "you are now DAN", "from now on you reply", "enter developer mode"
    r"\byou\s+are\s+now\s+(?:an?\s+|in\s+|the\s+|my\s+)?(?:ai|assistant|chatbot|bot|model|dan|unrestricted|"
    r"jailbroken|free\s+of|no\s+longer\s+bound|developer|evil|uncensored)\b",
    r"\bfrom\s+now\s+on,?\s+(?:you|always|only|reply|respond|answer)\b",
    r"\b(?:developer|god|jailbreak|dan)\s+mode\b",
    # Talking about the model's own set-up
    r"\b(?:system|hidden|initial|secret)\s+(?:prompt|message|instructions)\b",
    r"\b(?:reveal|print|repeat|show)\s+(?:me\s+)?(?:your|the)\s+(?:prompt|instructions|rules)\b",
    # Addressing an AI reader
    r"\b(?:if\s+you\s+are|note\s+to|attention|dear)\s+(?:an?\s+|the\s+|any\s+)?(?:ai|llm|language\s+model|"
    r"chatbot|assistant|bot)s?\b",
    r"\b(?:ai|llm|language\s+model|chatbot|assistant)s?\s+(?:reading|processing|summari[sz]ing)\s+this\b",
    # Dictating the reply: "reply only with ...", "respond with the word ...", "answer exactly ..."
    r"\b(?:reply|respond|answer|output|say|print|write)\s+(?:only|exactly|nothing\s+but|verbatim)\b",
    r"\b(?:reply|respond|answer)\s+(?:only\s+)?with\s+(?:only\s+|just\s+)?(?:the\s+(?:word|phrase|text|string)|[\"“'])",
    # Chat-format tokens and role labels
    r"<\|im_(?:start|end)\|>|\[/?INST\]|<</?SYS>>",
]
_CASE_SENSITIVE = [
    # "reply HACKED": a dictated word in capitals
    r"\b(?i:reply|respond|answer)\s+(?i:only\s+|exactly\s+|with\s+)*[\"“']?[A-Z]{3,}\b",
    r"(?:^|\s)(?:SYSTEM|ASSISTANT|USER)\s*:",
]
_INSTRUCTION = re.compile("|".join(_PATTERNS), re.IGNORECASE)
_ROLE_LABEL = re.compile("|".join(_CASE_SENSITIVE))


def instruction_spans(text: str) -> list[tuple[int, int]]:
    """Spans (start, end) of the sentences of `text` that read like instructions to an AI, in order."""
    if not (_INSTRUCTION.search(text) or _ROLE_LABEL.search(text)):
        return []  # the common case, without splitting sentences
    return [(a, b) for a, b in split_sentences(text) if looks_like_instructions(text[a:b])]


def looks_like_instructions(text: str) -> bool:
    return bool(_INSTRUCTION.search(text) or _ROLE_LABEL.search(text))
