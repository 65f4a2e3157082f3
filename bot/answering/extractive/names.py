"""Names in news text: runs of capitalised words, and how surely each names a person, an organisation or a place.

What a run is comes from the text around it: a title or a role before it ("Prime Minister Hubert Minnis",
"political scientist Ma Ngok"), an age or "said" after it, a word inside it ("Truth Aquatics Inc", "Griffith
University", "Holy Cross Hospital"), a place preposition before it ("died in Singapore").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache

from ingest.text import FUNCTION_WORDS


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WORD = re.compile(r"[^\W_](?:[\w'’&.-]*[^\W_])?")
# Lower-case words that join a name's capitalised words: "Ursula von der Leyen", "Osama bin Laden".
_PARTICLES = _word_set("de del della da di du von van der den le la al el bin ibn y")
# Joining words kept inside a run only when the whole run names an organisation or a place ("University of
# Bristol", "Baylor Scott and White Medical Center"), so that "Peebles and Queloz" stays two names.
_JOINERS = _word_set("of for and & the on upon")
_TITLES = _word_set(
    """mr mrs ms dr sir dame lord lady president prime minister secretary senator sen rep representative governor
    gov mayor judge justice king queen prince princess pope chancellor general gen colonel col captain capt
    lieutenant lt sergeant sgt officer chief commissioner inspector sheriff detective det professor prof father rev
    reverend bishop archbishop cardinal sheikh emir ayatollah crown deputy vice foreign interior defence defense
    health finance home attorney former acting interim premier speaker chairman chairwoman ambassador
    congressman congresswoman councillor councilor supt superintendent"""
)
_ROLES = _word_set(
    """scientist researcher minister spokesman spokeswoman spokesperson lawyer attorney judge author professor
    chairman chairwoman director official officer leader singer actor actress drummer guitarist artist president
    governor mayor senator representative congressman congresswoman councillor councilor driver pilot engineer
    doctor coach captain astronaut cosmonaut journalist reporter wife husband son daughter brother sister mother
    father aunt uncle suspect victim gunman attacker man woman boy girl teenager student member candidate rival
    opponent nominee founder owner ceo chief head premier chancellor secretary ambassador adviser advisor economist
    politician activist prosecutor winner champion runner athlete player manager entrepreneur businessman
    businesswoman billionaire designer composer musician poet novelist writer photographer filmmaker host presenter
    anchor commentator analyst expert biologist physicist chemist astronomer archaeologist historian cartoonist
    pastor priest king queen prince princess lieutenant sergeant detective inspector commander general soldier
    defendant survivor widow successor predecessor deputy"""
)
_ORGANISATION_WORDS = _word_set(
    """party company co corp corporation inc ltd llc plc group agency association society union foundation
    caucus charity council committee commission ministry department office court board authority university
    college institute institution school academy bank airlines airways airline police army navy force forces
    service services network news times post journal herald gazette tribune telegraph guardian club team league
    federation organisation organization trust fund materials labs laboratory laboratories museum parliament
    senate congress assembly government administration bureau orchestra church cathedral mosque hospice hospital
    centre center aquatics motors industries systems technologies media press broadcasting radio television tv
    records studios entertainment holdings partners cooperative guard brigade regiment commando coalition front
    movement alliance"""
)
_PLACE_WORDS = _word_set(
    """city town county province state island islands bay river lake mountain mount mt sea ocean gulf strait
    street st road avenue ave square park airport station hall cemetery palace bridge valley coast beach harbour
    harbor port district region hills peninsula desert forest canyon falls village borough hospital hospice
    prison jail centre center stadium arena castle tower cathedral temple estate fortaleza"""
)
_PLACE_ACRONYMS = _word_set("US USA UK UAE EU DRC U.S U.K U.S.A")
# Month and day names are capitalised but are dates, not names.
_CALENDAR = _word_set(
    """january february march april may june july august september october november december jan feb mar apr jun
    jul aug sep sept oct nov dec monday tuesday wednesday thursday friday saturday sunday yesterday today tomorrow
    tonight"""
)
_LOCATIVE = _word_set("in at near from outside inside to into across towards toward throughout around via")
# A single capitalised word before a lower-case one is often a nationality or a place used as a describing word.
_DEMONYM = re.compile(r"(?:an|ean|ish|ese|ic|i|ch|U\.S|US|UK|U\.K)$")
_NEXT_WORD = re.compile(r"\.? ([a-z][a-z-]*)\b")
_VERBS_AFTER = _word_set("said says told tells added wrote stated was is has had will would who and or")
_SAID_AFTER = re.compile(
    r"^(?:,\s*\d{1,3},|\s*\(\d{1,3}\)|\s+(?:said|says|told|tells|added|who|wrote|stated)\b|,\s+who\b)"
)


@dataclass(frozen=True, slots=True)
class Run:
    """A name in a sentence: `sentence[start:end]`, with what the text around it says about it."""

    start: int
    end: int
    words: tuple[str, ...]
    person_cue: bool
    locative: bool
    titled: bool = False  # a title or a role stands before it

    @property
    def organisation_cue(self) -> bool:
        return any(w.lower() in _ORGANISATION_WORDS for w in self.words) or (
            len(self.words) == 1 and _is_acronym(self.words[0]) and self.words[0] not in _PLACE_ACRONYMS
        )

    @property
    def place_cue(self) -> bool:
        return (
            any(w.lower() in _PLACE_WORDS for w in self.words)
            or self.words[0] in _PLACE_ACRONYMS
            or " ".join(self.words).lower() in places()
        )


@cache
def places() -> frozenset[str]:
    """Country and country-subdivision names (ISO 3166, as Debian's iso-codes keep them), in lower case."""
    import pycountry

    names = {s.name for s in pycountry.subdivisions}
    for country in pycountry.countries:
        names.update(getattr(country, field, country.name) for field in ("name", "common_name", "official_name"))
    return frozenset(n.lower() for n in names)


def _is_acronym(word: str) -> bool:
    letters = word.replace(".", "").replace("&", "")
    return 2 <= len(letters) <= 6 and letters.isalpha() and letters.isupper()


def _capitalised(word: str) -> bool:
    """A name's word: capitalised, an acronym, or a brand's inner capitals ("spotLESS", "iPhone")."""
    return word[0].isupper() or _is_acronym(word) or (word[0].islower() and any(c.isupper() for c in word[1:]))


def _runs(sentence: str, lowered: frozenset[str]) -> list[Run]:
    """Every run of capitalised words (with particles and joiners between them) in the sentence."""
    tokens = [(m.start(), m.end(), m.group()) for m in _WORD.finditer(sentence)]
    runs: list[Run] = []
    i = 0
    while i < len(tokens):
        if not _capitalised(tokens[i][2]):
            i += 1
            continue
        j = i + 1
        while j < len(tokens):
            gap = sentence[tokens[j - 1][1] : tokens[j][0]]
            word = tokens[j][2]
            if gap != " " or tokens[j - 1][2].endswith(("'s", "’s")):
                break
            joins = word in _PARTICLES | _JOINERS and j + 1 < len(tokens) and _capitalised(tokens[j + 1][2])
            if not (_capitalised(word) or joins):
                break
            j += 1
        found = _split_run(sentence, tokens[i:j], lowered, at_start=i == 0)
        after_place = runs and runs[-1].locative and sentence[runs[-1].end : found[0].start] == ", " if found else False
        if found and after_place and len(found[0].words) == 1:
            found[0] = replace(found[0], locative=True)  # "in Stockholm, Sweden": the second is a place too
        runs += found
        i = j
    return runs


def _split_run(
    sentence: str, tokens: list[tuple[int, int, str]], lowered: frozenset[str], *, at_start: bool
) -> list[Run]:
    """A run as names: a sentence's ordinary first word, titles and a possessive 's left out, and split at joiners
    unless the whole names an organisation or a place."""
    if at_start and (tokens[0][2].lower() in lowered or tokens[0][2].lower() in FUNCTION_WORDS):
        tokens = tokens[1:]
    titled = False
    while tokens and tokens[0][2].lower().rstrip(".") in _TITLES and len(tokens) > 1:
        tokens, titled = tokens[1:], True
    while tokens and (tokens[0][2] in _JOINERS | {"The"} or tokens[-1][2] in _JOINERS | _PARTICLES):
        tokens = tokens[1:] if tokens[0][2] in _JOINERS | {"The"} else tokens[:-1]
    if not tokens or all(t[2].lower().rstrip(".") in _CALENDAR for t in tokens):
        return []
    words = tuple(t[2] for t in tokens)
    whole = any(w.lower() in _ORGANISATION_WORDS | _PLACE_WORDS for w in words)
    if not whole and any(w in _JOINERS for w in words):
        parts: list[list[tuple[int, int, str]]] = [[]]
        for token in tokens:
            if token[2] in _JOINERS:
                parts.append([])
            else:
                parts[-1].append(token)
        return [run for part in parts if part for run in _split_run(sentence, part, lowered, at_start=False)]
    start, end = tokens[0][0], tokens[-1][1]
    if sentence[end - 2 : end] in ("'s", "’s"):
        end -= 2
    elif len(tokens) == 1 and _DEMONYM.search(words[0]) and _describes(sentence, end):
        return []  # "English drummer", "Italian artist", "U.S. heiress": a describing word, not a name
    before = sentence[max(0, start - 40) : start].split()
    previous = before[-1].lower().strip(",;:(\"'“") if before else ""
    titled = titled or previous in _ROLES
    person_cue = titled or bool(_SAID_AFTER.match(sentence[end:]))
    return [Run(start, end, words, person_cue, previous in _LOCATIVE, titled)]


def _describes(sentence: str, end: int) -> bool:
    """Whether the word ending at `end` is followed by a lower-case word it describes (not a verb it is subject of)."""
    follows = _NEXT_WORD.match(sentence, end)
    return follows is not None and follows.group(1) not in _VERBS_AFTER and not follows.group(1).endswith("ed")


def _fit(run: Run, kind: str) -> float:
    """How surely the run names a `kind` (person, organisation or place)."""
    several = len(run.words) > 1
    if kind == "person":
        if run.organisation_cue or run.place_cue:
            return 0.15 if not run.titled else 0.5
        if run.person_cue:
            return 1.0
        if run.locative:
            return 0.5 if several else 0.3
        return 0.7 if several else 0.45
    if kind == "organisation":
        if run.organisation_cue:
            return 1.0
        return 0.1 if run.person_cue else 0.35 if run.place_cue else 0.5 if several else 0.35
    if run.place_cue:
        return 1.0 if run.locative else 0.6  # "died in Singapore" is where he died; "president of Zimbabwe" less so
    if run.locative and not run.person_cue and not run.organisation_cue:
        return 0.85
    return 0.1 if run.person_cue else 0.35 if run.organisation_cue else 0.45 if several else 0.4


def names(sentence: str, lowered: frozenset[str], kind: str) -> list[tuple[int, int, float]]:
    """(start, end, fit) of each name in `sentence`, as a candidate answer of `kind`: person, organisation or place.

    `lowered` holds words seen in lower case nearby: one of them capitalised at the start of a sentence is an
    ordinary word, not a name."""
    return [(run.start, run.end, _fit(run, kind)) for run in _runs(sentence, lowered)]
