"""CLI for articles from the web: `byline feeds add|list|remove` and `byline watch`.

URLs, `--feed` and `--sitemap` go through `byline ingest` (see `web_sources`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli import common
from bot.cli.common import fail, settings_from, user_errors

if TYPE_CHECKING:
    from ingest.web.state import Feed


def web_sources(feeds: list[str] | None, sitemaps: list[str] | None) -> list[str]:
    """`byline ingest --feed URL --sitemap URL` as sources the loader registry understands."""
    from ingest.web.loader import FEED_PREFIX, SITEMAP_PREFIX

    return [FEED_PREFIX + url for url in feeds or []] + [SITEMAP_PREFIX + url for url in sitemaps or []]


def web_overrides(since: date | None) -> dict[str, object]:
    """Settings overrides for `byline ingest --since DATE`."""
    return {"web": {"sitemap_since": since}} if since else {}


def _check_url(url: str) -> None:

    if not url.lower().startswith(("http://", "https://")):
        fail(f"{url}: not an http(s) URL", 2)


def _every(value: str | None, option: str = "--every") -> float | None:
    from bot.watch import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        fail(f"{option}: {exc}", 2)


def feeds_add(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(metavar="URL", help="RSS or Atom feed URL.")],
    every: Annotated[
        str | None,
        typer.Option(metavar="INTERVAL", help="Poll interval for this feed, e.g. 1h (default: watch's --every)."),
    ] = None,
    check: Annotated[bool, typer.Option(help="Fetch the feed once to check that it is one.")] = True,
) -> None:
    """Follow a feed: `byline watch` polls it and ingests its new and changed articles.

    Example: byline feeds add https://www.theguardian.com/world/rss --every 1h
    """
    from ingest.web.feeds import parse_feed
    from ingest.web.fetch import Fetcher, FetchFailure
    from ingest.web.state import WebState

    interval = _every(every)
    settings = settings_from(ctx)
    _check_url(url)
    if check:
        with Fetcher(settings.web) as fetcher:
            result = fetcher.fetch(url)
        if isinstance(result, FetchFailure):
            fail(f"{url}: {result.reason}")
        try:
            feed = parse_feed(result.body, result.final_url, result.content_type)
        except ValueError as exc:
            fail(f"{url}: {exc}")
        typer.echo(f"{feed.title or url}: {len(feed.entries)} entries")
    with user_errors():
        added = WebState(common.open_byline(settings).catalog).add_feed(url, interval)
    typer.echo(f"following {url}" if added else f"already following {url}")


def feeds_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the feeds as JSON.")] = False,
) -> None:
    """The followed feeds, with when each was last polled and how that went.

    Example: byline feeds list --json
    """
    from ingest.web.state import WebState

    settings = settings_from(ctx)
    with user_errors():
        feeds = WebState(common.open_byline(settings).catalog).feeds()
    if as_json:
        typer.echo(json.dumps([_feed_dict(f) for f in feeds]))
        return
    if not feeds:
        typer.echo("no feeds followed: add one with `byline feeds add URL`")
    for feed in feeds:
        every = f"every {feed.interval:g} s" if feed.interval else "on watch's schedule"
        polled = f"last polled {feed.last_polled}" if feed.last_polled else "never polled"
        status = f" · last error: {feed.last_error}" if feed.last_error else ""
        typer.echo(f"{feed.url}  {feed.title or ''}\n  {every} · {polled}{status}")


def _feed_dict(feed: Feed) -> dict[str, object]:
    return {k: v for k, v in asdict(feed).items() if k not in ("etag", "last_modified")}


def feeds_remove(
    ctx: typer.Context, url: Annotated[str, typer.Argument(metavar="URL", help="A followed feed's URL.")]
) -> None:
    """Stop following a feed (its articles stay indexed; `byline forget` removes them).

    Example: byline feeds remove https://www.theguardian.com/world/rss
    """
    from ingest.web.state import WebState

    settings = settings_from(ctx)
    with user_errors():
        removed = WebState(common.open_byline(settings).catalog).remove_feed(url)
    if not removed:
        fail(f"not following {url}")
    typer.echo(f"stopped following {url}")


def watch(
    ctx: typer.Context,
    every: Annotated[
        str, typer.Option(metavar="INTERVAL", help="Poll interval of feeds without their own, e.g. 15m, 1h, 90s.")
    ] = "15m",
    once: Annotated[bool, typer.Option(help="Poll every followed feed once, then exit.")] = False,
) -> None:
    """Poll every followed feed on its schedule and ingest new and changed articles, until stopped.

    A failing feed or page is logged and retried next round; Ctrl-C or SIGTERM stops between articles.

    Example: byline watch --every 30m
    """
    from bot.cli.progress import ingest_display
    from bot.stopping import StopFlag
    from bot.watch import Watcher, stop_on_signals

    interval = _every(every)
    settings = settings_from(ctx)
    stop = StopFlag()

    def echo(line: str) -> None:
        typer.echo(line, err=line.startswith(("  failed", "SIG")))

    with user_errors():
        watcher = Watcher(common.open_byline(settings), every=interval, stop=stop, echo=echo, display=ingest_display)
        if not watcher.state.feeds():
            fail("no feeds followed: add one with `byline feeds add URL`")
        with stop_on_signals(stop, echo):
            if once:
                outcomes = watcher.poll_round(everything=True)
                failed = any(o.error or (o.poll and o.poll.error) for o in outcomes)
                raise typer.Exit(1 if failed else 0)
            rounds = watcher.run()
    typer.echo(f"stopped after {rounds} round(s)", err=True)


def register(app: typer.Typer) -> None:
    """Add `feeds` and `watch` to the `byline` app."""
    feeds = typer.Typer(
        help="Feeds that `byline watch` follows (remembered in the catalog).\n\n"
        "Example: byline feeds add https://www.theguardian.com/world/rss",
        no_args_is_help=True,
    )
    feeds.command("add")(feeds_add)
    feeds.command("list")(feeds_list)
    feeds.command("remove")(feeds_remove)
    app.add_typer(feeds, name="feeds")
    app.command()(watch)
