"""What a question asks for: the kind of fact (a person, a date, a number, a reason, ...) and the words it is about.

People ask in more ways than wh-words: "what was the casualty count", "on what day", "which minister", "according
to the report, how many …", behind a lead-in such as "for tonight's story:" or "quick check —". The kind is read
from the clause that asks (after any lead-in or attribution); the key terms from the whole question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingest.text import ASKING_WORDS, CONTENT_STOPWORDS, content_words, word_spans

# The kinds of fact, named as the eval sets name them (evals.datasets.ANSWER_KINDS).
KINDS = ("person", "organisation", "place", "date", "number", "money", "quantity", "age", "duration", "reason", "other")
# Kinds whose answer is a span of text of that kind; a reason is a clause, and "other" anything.
SPAN_KINDS = frozenset(KINDS) - {"reason", "other"}

# Chat before the question proper: "Quick check — where …", "For tonight's story: what …", "Remind me who …".
_LEAD_IN = re.compile(
    r"^\s*(?:(?:quick check|just checking|fact check|for (?:tonight's|today's|the) (?:story|piece|report)"
    r"|need an? \w+ for the (?:piece|story)|remind me(?: again)?|can you tell me|could you tell me"
    r"|do (?:you|we) know|any idea|i need to know|i'd like to know|tell me|please|so|ok(?:ay)?|hey|hi)"
    r"\b[\s,:;.!—–-]*)+",
    re.IGNORECASE,
)
# A clause that attributes rather than asks: "According to the report, how many …".
_ATTRIBUTION = re.compile(r"^\s*according to [^,?]{1,80},\s*", re.IGNORECASE)
# Where a preamble ends and the asking clause begins: "… chief executive: who holds that post …".
_CLAUSE_BREAK = re.compile(r"\s*(?::|—|–|\s-\s)\s*")
_ASKS = re.compile(r"\b(who|whom|whose|what|which|where|when|why|how)\b", re.IGNORECASE)


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Head nouns of "which minister", "what was the casualty count", "the name of the escape room business": the noun
# says the kind of fact. Plurals are found by dropping a final "s".
_HEAD_NOUNS: dict[str, tuple[str, ...]] = {
    "person": (
        "minister", "secretary", "judge", "justice", "governor", "president", "leader", "official", "officer", "man",
        "men", "woman", "women", "boy", "girl", "person", "people", "actor", "actress", "singer", "driver", "pilot",
        "player", "athlete", "runner", "scientist", "author", "writer", "researcher", "spokesman", "spokeswoman",
        "spokesperson", "doctor", "lawyer", "attorney", "prosecutor", "senator", "representative", "congressman",
        "congresswoman", "mayor", "chancellor", "king", "queen", "prince", "princess", "ceo", "chair", "chairman",
        "chairwoman", "director", "coach", "captain", "commander", "suspect", "victim", "gunman", "attacker",
        "engineer", "professor", "economist", "politician", "candidate", "member", "councillor", "councilor",
        "activist", "artist", "god", "goddess", "ambassador", "envoy", "adviser", "advisor", "surname", "successor",
        "founder", "owner", "winner", "astronaut", "cosmonaut", "journalist", "reporter", "musician", "drummer",
        "guitarist", "pope", "bishop", "general", "soldier", "student", "teacher", "child", "children", "son",
        "daughter", "wife", "husband", "name", "nominee", "defendant", "survivor",
    ),
    "organisation": (
        "company", "companies", "organisation", "organization", "group", "agency", "party", "team", "airline", "firm",
        "university", "universities", "college", "school", "charity", "charities", "foundation", "caucus",
        "institution", "institute", "newspaper", "network", "channel", "club", "court", "body", "business", "union",
        "bank", "committee", "council", "church", "ministry", "department", "broadcaster", "outlet", "publication",
        "magazine", "association", "society", "league", "army", "militia", "movement", "manufacturer", "operator",
        "carrier", "coalition", "government", "employer", "sponsor", "publisher", "insurer", "brand",
    ),
    "place": (
        "city", "cities", "town", "country", "countries", "state", "province", "region", "county", "district",
        "village", "island", "constituency", "airport", "hospital", "prison", "port", "capital", "area",
        "neighbourhood", "neighborhood", "street", "venue", "site", "location", "cemetery", "hall", "building",
        "continent", "ocean", "sea", "river", "lake", "mountain", "park", "stadium", "station", "hotel", "place",
        "destination", "border",
    ),
    "date": ("year", "date", "day", "month", "time", "decade", "century", "era", "season", "weekday"),
    "number": (
        "share", "percentage", "proportion", "number", "percent", "fraction", "rate", "toll", "count", "total", "tally",
        "turnout", "score", "margin", "figure", "majority", "forecast", "magnitude", "ratio", "rank", "ranking",
    ),
    "money": ("cost", "price", "fine", "salary", "bill", "budget", "fee", "sum", "worth", "value", "compensation"),
    "quantity": ("speed", "distance", "height", "depth", "weight", "size", "length", "temperature", "area", "volume"),
    "age": ("age",),
    "duration": ("duration", "period", "time"),
    "reason": ("cause", "reason", "motive", "grounds", "purpose", "explanation"),
}  # fmt: skip
# The kind a head noun asks for (the first listed, for a noun under two kinds: "time" asks for a date) ...
_HEAD_KIND = {noun: kind for kind, nouns in reversed(_HEAD_NOUNS.items()) for noun in nouns}
# ... and every kind of answer it can name ("His time was 1:59:40" names a duration).
_NOUN_KINDS: dict[str, frozenset[str]] = {
    noun: frozenset(k for k, nouns in _HEAD_NOUNS.items() if noun in nouns) for noun in _HEAD_KIND
}
# Words that end the noun phrase after "which"/"what": verbs that ask, prepositions, articles.
_PHRASE_ENDS = _word_set(
    "is was were are be been did does do has have had will would can could should may might said says won took "
    "made gave held led ran got went came told in on at of to for from by with about over into after before during "
    "the a an and or that who"
)
_MONEY_WORDS = (
    r"cost|costs|worth|paid|pay|pays|paying|fined?|fines|raised?|raising|price|spend|spent|money|funding|funded"
    r"|budget|salary|earn|earned|earns|make|made|makes|prize|bill|compensation|bail|donat\w*|collect\w*|award\w*"
    r"|dollars?|pounds?|euros?|damages?|revenue|sold|sell|bid|loan|debt|fee|fees|reward|charge|charged"
)
_TIME_UNITS = r"seconds|minutes|hours|days|weeks|months|years|decades"

# Tried in order, before and after the head noun of a which/what question; the first that matches says the kind.
_BEFORE_HEAD: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        (
            "reason",
            r"^(why|how come)\b|\b(what|which) (\w+ )?(caused|causes|started|led to|prompted|triggered|pushed|drove)\b"
            r"|\bon what grounds\b|\bfor what reason\b|\b(die|died|dies) (of|from)\b|\bcome by\b|^what\b.*\bfor\W*$",
        ),
        ("age", r"\bhow old\b|\bat what age\b"),
        (
            "duration",
            rf"\bhow long\b(?! ago)|\bhow quickly\b|\bhow many ({_TIME_UNITS})\b|\bhow much of (his|her|their) \w+\b"
            r"|\b(finishing|winning|race|marathon|record|running|flight|journey) time\b",
        ),
        ("money", rf"\bhow much\b.*\b({_MONEY_WORDS})\b|\bhow much (money|cash)\b|^what\b.*\b(worth|cost)\W*$"),
        ("quantity", r"\bhow (tall|high|deep|far|fast|big|large|heavy|wide|strong|hot|cold|much)\b|\bweigh\b"),
        ("number", r"\bhow many\b"),
    )
)
_AFTER_HEAD: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        ("date", r"^when\b|\bwhen('s| is| was| did| will| does| do| were| are| has| had)\b|\bfrom when\b"),
        ("place", r"^where\b|\bwhere('s| is| was| did| will| does| do| were| are| has| had| can| could)\b"),
        ("organisation", r"\bwho (funded|sponsored|operated|published|employed)\b"),
        ("person", r"^(who|whom|whose)\b|\b(who|whom|whose)\b"),
        ("number", r"\bturnout\b|\b(casualty|death) (count|toll)\b"),
    )
)
_WHICH = re.compile(r"\b(?:which|what|whose)\b(?:\s+(?:is|was|were|are)\b(?:\s+(?:the|a|an)\b)?)?", re.IGNORECASE)


def _head_noun(clause: str) -> tuple[str, str] | None:
    """The head noun of the noun phrase after "which"/"what" and the kind it names ("which Louisiana town" ->
    place); past "the name of the …" to the noun that follows."""
    for match in _WHICH.finditer(clause):
        phrase = clause[match.end() :].split()
        head = None
        for i, word in enumerate(phrase[:6]):
            word = word.strip("?,.!;:\"'").removesuffix("'s")
            if word in _PHRASE_ENDS:
                # "the name of the escape room business": the noun after "of" names the kind better.
                if (
                    word == "of"
                    and (head is None or head[0] == "person")
                    and phrase[i - 1 : i] in (["name"], ["names"])
                ):
                    named = _head_noun("which " + " ".join(w for w in phrase[i + 1 : i + 7] if w not in ("the", "a")))
                    return named or head
                break
            if head and (word.endswith("ed") or word[:1].isdigit()):
                break  # "which hospital treated 25 people": the verb after the head noun ends the phrase
            kind = _HEAD_KIND.get(word) or _HEAD_KIND.get(word.removesuffix("s"))
            head = (kind, word) if kind else head
        if head:
            return head
    return None


@dataclass(frozen=True, slots=True)
class Asked:
    """What a question asks for: `kind` (one of KINDS), the clause that asks, and the key terms it is about."""

    kind: str
    clause: str
    terms: frozenset[str]
    # The key term that names the kind of answer ("minister" in "which minister", "deep" in "how deep"): a
    # sentence that names it just before a span says what the span is.
    kind_words: frozenset[str] = frozenset()
    # Key terms that name what the story is about ("Grayback" in "Who commanded the USS Grayback"): the rest say
    # what the question asks about it ("commanded", "patrol").
    topic_words: frozenset[str] = frozenset()
    # Key terms that name a kind of thing ("party", "seats", "minister", "deep"): the answering sentence may well not
    # repeat them, so they do not count for or against it being about the question.
    head_words: frozenset[str] = frozenset()

    @property
    def wants_span(self) -> bool:
        return self.kind in SPAN_KINDS


def asking_clause(question: str) -> str:
    """The part of the question that asks, without lead-ins, attributions or a preamble before a colon or dash."""
    text = _LEAD_IN.sub("", question.replace("\u2019", "'")).strip()
    parts = _CLAUSE_BREAK.split(text)
    # The asking clause runs from the last part with a question word to the end ("how many – in all – died?").
    asking = [i for i, part in enumerate(parts) if _ASKS.search(part)]
    if asking:
        text = " ".join(parts[asking[-1] :])
    text = _ATTRIBUTION.sub("", text)
    return _LEAD_IN.sub("", text).strip()


def asked_kind(question: str) -> str:
    """The kind of fact the question asks for (one of KINDS)."""
    return _kind_and_noun(asking_clause(question).lower())[0]


def _kind_and_noun(clause: str) -> tuple[str, str | None]:
    """The kind asked for, and the noun of the clause that names it ("time" in "Kipchoge's marathon time")."""
    for kind, pattern in _BEFORE_HEAD:
        if found := pattern.search(clause):
            return kind, next((w for w in found.group().split() if w in _NOUN_KINDS or w in _MEASURES), None)
    if head := _head_noun(clause):
        return head
    return next((kind for kind, pattern in _AFTER_HEAD if pattern.search(clause)), "other"), None


def key_terms(text: str) -> frozenset[str]:
    """The words that say what the question is about: no function, reporting or asking words."""
    stripped = _LEAD_IN.sub("", text.replace("\u2019", "'"))
    return frozenset(content_words(stripped, CONTENT_STOPWORDS | ASKING_WORDS))


# The measures "how tall/deep/far …" ask for: words naming the kind of answer, like a head noun.
_MEASURES = frozenset(("tall", "high", "deep", "far", "fast", "big", "large", "heavy", "wide", "strong", "hot", "cold"))


def analyse(question: str, query: str | None = None) -> Asked:
    """What `question` asks for; the key terms come from `query` (the question condensed with the conversation)."""
    clause = asking_clause(question)
    terms = key_terms(query or question)
    kind, noun = _kind_and_noun(clause.lower())
    heads = {t for t in terms if t in _NOUN_KINDS or t.removesuffix("s") in _NOUN_KINDS} | (terms & _MEASURES)
    named = frozenset({noun} & terms) if noun else frozenset()
    return Asked(kind, clause, terms, named, topic_words(query or question), frozenset(heads))


def topic_words(question: str) -> frozenset[str]:
    """The question's names and figures, in lower case: words written capitalised (past its first word) or with a
    digit."""
    spans = word_spans(question)
    return frozenset(
        w for i, (a, _, w) in enumerate(spans) if (i and question[a].isupper()) or any(c.isdigit() for c in w)
    )
