"""Links: tracking parameters stripped by courlan's list, and text-fragment deep links to quotes."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from ingest.links import is_tracking_parameter, strip_tracking, text_fragment, text_fragment_url

# -- tracking parameters -----------------------------------------------------------------------------------


# the seven Byline stripped before (utm_* in two spellings), then some of the many more courlan's list knows
STRIPPED_BEFORE = ["utm_source", "UTM_Campaign", "fbclid", "gclid", "mc_cid", "mc_eid", "ocid", "cmpid"]
COURLAN_MORE = ["msclkid", "dclid", "igshid", "_ga", "_gl", "xtor", "itm_source", "mkt_tok", "at_medium", "ref"]


@pytest.mark.parametrize("name", [*STRIPPED_BEFORE, *COURLAN_MORE])
def test_tracking_parameters(name: str) -> None:
    assert is_tracking_parameter(name)
    assert strip_tracking(f"https://example.org/a?{name}=x") == "https://example.org/a"


@pytest.mark.parametrize(
    "name", ["id", "p", "page", "story", "article_id", "gallery", "game", "refresh", "keywords", "q", "tag", "sid"]
)
def test_parameters_that_address_content_are_kept(name: str) -> None:
    # courlan's own regex takes `gallery`, `game`, `refresh` and `keywords` for trackers (prefix matches)
    assert not is_tracking_parameter(name)
    url = f"https://example.org/a?{name}=7"
    assert strip_tracking(url) == url


def test_strip_tracking_keeps_the_rest_of_the_url() -> None:
    url = "https://example.org/story?page=2&utm_source=rss&empty=&id=7&fbclid=abc#comments"
    assert strip_tracking(url) == "https://example.org/story?page=2&empty=&id=7#comments"
    untouched = "https://example.org/story?b=2&a=1"
    assert strip_tracking(untouched) is untouched  # nothing to strip: the very string, not reordered
    assert strip_tracking("https://example.org/story") == "https://example.org/story"


# -- text fragments ----------------------------------------------------------------------------------------


def directive_terms(url: str) -> list[str]:
    directive = url.split("#:~:text=", 1)[1] if "#:~:" in url else url.split(":~:text=", 1)[1]
    return [unquote(term) for term in directive.split(",")]


def test_a_short_quote_is_one_encoded_term() -> None:
    url = text_fragment_url("https://example.org/a", "Dorsey said: well-known, A&B – yes")
    assert url == "https://example.org/a#:~:text=Dorsey%20said%3A%20well%2Dknown%2C%20A%26B%20%E2%80%93%20yes"
    # the characters that delimit the directive are never bare inside a term
    directive = url.split(":~:text=")[1]
    assert not {"-", "&", ",", " "} & set(directive)
    assert directive_terms(url) == ["Dorsey said: well-known, A&B – yes"]


def test_whitespace_is_collapsed() -> None:
    assert text_fragment("  the  storm\nsurge ") == "text=the%20storm%20surge"


def test_a_long_quote_is_a_range_of_first_and_last_words() -> None:
    quote = (
        "Harbourmaster Ines Okafor said the water rose 1.8 metres above the spring-tide mark within two hours, "
        "the highest level recorded since the sea wall was rebuilt in 1998."
    )
    terms = directive_terms(text_fragment_url("https://example.org/a", quote))
    assert terms == ["Harbourmaster Ines Okafor said", "was rebuilt in 1998."]
    assert quote.startswith(terms[0]) and quote.endswith(terms[1])


def test_the_range_end_grows_until_its_first_match_is_the_quote_end() -> None:
    # the last four, five and six words also occur mid-quote (a whole-word match ignores the comma after them);
    # a browser would stop the highlight there
    quote = (
        "Residents were told on Monday the work would take weeks, said the council, and that it would take "
        "weeks, said the council"
    )
    terms = directive_terms(text_fragment_url("https://example.org/a", quote))
    assert terms[0] == "Residents were told on"
    assert terms[1] == "it would take weeks, said the council"
    # as the browser matches (case-blind, whole words), the end term first occurs at the end of the quote
    after_start = quote[len(terms[0]) :].casefold()
    assert after_start.find(terms[1].casefold()) == len(after_start) - len(terms[1])


def test_a_quote_over_two_paragraphs_keeps_each_end_in_its_paragraph() -> None:
    quote = "The ferry is cancelled.\n\nBuses replace it."
    assert directive_terms(text_fragment_url("https://example.org/a", quote)) == [
        "The ferry is cancelled.",
        "Buses replace it.",
    ]


def test_prefix_disambiguates() -> None:
    url = text_fragment_url("https://example.org/a", "the council said", prefix="First paragraph.\n\nOn Monday, ")
    directive = url.split(":~:text=")[1]
    assert directive.split(",")[0] == "On%20Monday%2C-"  # only the quote's own paragraph, ending in a bare `-`
    assert unquote(directive.split(",")[1]) == "the council said"


def test_existing_fragments() -> None:
    assert text_fragment_url("https://example.org/a#section-2", "storm").endswith("/a#section-2:~:text=storm")
    replaced = text_fragment_url("https://example.org/a#top:~:text=old%20quote", "new quote")
    assert replaced == "https://example.org/a#top:~:text=new%20quote"
    assert text_fragment_url("https://example.org/a?x=1", "storm") == "https://example.org/a?x=1#:~:text=storm"
    with pytest.raises(ValueError, match="nothing to quote"):
        text_fragment(" \n ")
