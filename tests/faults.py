"""Fault injection on one home: the real `byline` CLI adding, updating and forgetting articles, killed (SIGKILL)
at random points, while a warm asker process asks throughout; the index checked after every kill and every
finished write. Random choices come from a seeded generator, so a failing run can be replayed.

Used by tests/test_fault_injection.py (a short run in the suite) and tests/soak_index.py (the long run). Run as a
script, this file is an asker: `python tests/faults.py ask HOME WORKDIR NAME PAUSE`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from ingest.storage.catalog import CatalogError

BYLINE = Path(sys.executable).with_name("byline")
QUESTIONS = [
    ("What happened in Magnitogorsk?", None),
    ("Who was elected Speaker of the House?", None),
    ("What did the study find about youth suicide?", date(2019, 1, 1)),
    ("Which capsule docked with the International Space Station?", date(2019, 3, 1)),
    ("What caught fire in Paris?", None),
    ("Who won the Nobel Prize in physics?", date(2019, 6, 1)),
]

Kind = Literal["add", "update", "forget"]


@dataclass
class Article:
    record: dict[str, str]
    state: Literal["absent", "present", "unsure"] = "absent"  # unsure: a write on it was killed
    version: int = 0  # of the text last written by a finished ingest

    @property
    def url(self) -> str:
        return self.record["url"]

    def text(self, version: int) -> dict[str, str]:
        extra = f" Correction {version}: an earlier version of this report misstated a detail." if version else ""
        return dict(self.record, text=self.record["text"] + extra)


@dataclass
class Figures:
    kills: int = 0
    kills_in_writes: int = 0  # aimed inside a write (after the write generation moved)
    ops: Counter[str] = field(default_factory=Counter)
    after_kill: Counter[str] = field(default_factory=Counter)  # what doctor found right after each kill
    unhealthy_after_write: list[str] = field(default_factory=list)  # doctor not ok after a finished write
    lost: list[str] = field(default_factory=list)  # articles a finished write put in that went missing
    asks: int = 0
    ask_errors: list[str] = field(default_factory=list)
    empty_index_asks: int = 0
    answerable_after: list[float] = field(default_factory=list)  # seconds, ingest end -> asker cites it
    never_answered: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        waits = sorted(self.answerable_after)
        return {
            "kills": self.kills,
            "kills_in_writes": self.kills_in_writes,
            "ops": dict(self.ops),
            "after_kill": dict(self.after_kill),
            "unhealthy_after_write": self.unhealthy_after_write,
            "articles_lost": len(self.lost),
            "asks": self.asks,
            "asks_failed": len(self.ask_errors),
            "ask_errors": self.ask_errors[:5],
            "empty_index_asks": self.empty_index_asks,
            "probes": len(waits),
            "never_answered": self.never_answered,
            "answerable_median_s": round(waits[len(waits) // 2], 2) if waits else None,
            "answerable_worst_s": round(waits[-1], 2) if waits else None,
            "seconds": round(self.seconds, 1),
        }


class Run:
    """One fault-injection run on `home` (empty at the start), with scratch files in `work`."""

    def __init__(
        self, home: Path, work: Path, records: list[dict[str, str]], seed: int, *, verbose: bool = False
    ) -> None:
        self.home, self.work, self.verbose = home, work, verbose
        self.articles = [Article(r) for r in records]
        self.rng = random.Random(seed)
        self.env = {**os.environ, "BYLINE_HOME": str(home), "HF_HUB_OFFLINE": "1"}
        self.figures = Figures()
        self.steps = 0
        self.probes: dict[str, dict[str, Any]] = {}  # url -> the question the askers ask about a new article
        from bot.app import Byline
        from bot.settings import load_settings

        # The checker: another Byline on the home (like another process: its own Chroma instance).
        self.checker = Byline(load_settings(home=home))

    # -- the run ---------------------------------------------------------------------------------------

    def run(self, kills: int, kill_share: float = 0.75, askers: int = 1, pause: float = 0.1, asks: int = 0) -> Figures:
        """Write until `kills` commands were killed (a share `kill_share` of them are) and `askers` warm askers,
        asking every `pause` seconds meanwhile, asked `asks` questions between them."""
        started = time.monotonic()
        running = [self.start_asker(f"asker-{i}", pause) for i in range(askers)]
        try:
            while self.figures.kills < kills or self.asked(askers) < asks:
                self.step(kill=self.rng.random() < kill_share)
            self.finish()
        finally:
            self.stop_askers(running)
        self.figures.seconds = time.monotonic() - started
        return self.figures

    def step(self, kill: bool) -> None:
        self.steps += 1
        kind, chosen, argv, version = self.plan()
        self.figures.ops[kind] += 1
        if kind == "forget":
            self.withdraw(chosen)
        if kind == "add" and not self.probes:
            kill = False  # while no new article is being asked about, an add finishes: the askers get one
        process = subprocess.Popen(argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if kill and self.kill_at_random_point(process):
            for article in chosen:
                article.state = "unsure"
            self.figures.kills += 1
            self.record_doctor(after_kill=True)
            self.log(f"{kind} killed")
            return
        _, err = process.communicate(timeout=600)
        if process.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({process.returncode}): {err.strip()[-500:]}")
        ended = time.time()
        for article in chosen:
            article.state = "absent" if kind == "forget" else "present"
            article.version = version
        self.record_doctor(after_kill=False)
        self.check_articles()
        if kind == "add":
            self.probe(chosen[0], ended)
        self.log(f"{kind} done")

    def log(self, what: str) -> None:
        if self.verbose:
            print(f"step {self.steps} {what}; kills {self.figures.kills}", flush=True)

    def plan(self) -> tuple[Kind, list[Article], list[str], int]:
        """What to run next: the kind of write, the articles, the command, the text version written."""
        absent = [a for a in self.articles if a.state == "absent"]
        present = [a for a in self.articles if a.state != "absent"]
        surely = [a for a in present if a.state == "present"]  # forget names only articles surely there
        weights: dict[Kind, float] = {
            "add": 2.0 * bool(absent),
            "update": 2.0 * (len(present) >= 4),
            "forget": 1.5 * (len(surely) >= 3),
        }
        kind = self.rng.choices(list(weights), weights=list(weights.values()))[0]
        if kind == "forget":
            chosen = self.rng.sample(surely, 3)
            return kind, chosen, [str(BYLINE), "forget", *(a.url for a in chosen)], 0
        pool = absent if kind == "add" else present
        chosen = self.rng.sample(pool, min(len(pool), 6))
        path = self.work / f"step-{self.steps}.jsonl"
        version = 0 if kind == "add" else self.steps
        path.write_text("".join(json.dumps(a.text(version)) + "\n" for a in chosen))
        return kind, chosen, [str(BYLINE), "ingest", str(path)], version

    def kill_at_random_point(self, process: subprocess.Popen[str]) -> bool:
        """SIGKILL inside the write (soon after it begins) or anywhere; False if the command ended first."""
        if self.rng.random() < 0.8:
            self.wait_for_new_marks(process)
            delay = self.rng.uniform(0.0, 0.2)
            aimed = True
        else:
            delay, aimed = self.rng.uniform(0.0, 5.0), False
        deadline = time.monotonic() + delay
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        if process.poll() is not None:
            process.communicate()
            return False
        process.send_signal(signal.SIGKILL)
        process.communicate()
        self.figures.kills_in_writes += aimed
        return True

    def wait_for_new_marks(self, process: subprocess.Popen[str]) -> None:
        """Until the command marks articles pending: its write begins. (Marks a killed command left are
        cleared first, when the next command opens the index.)"""
        leftovers = self.pending() > 0
        while process.poll() is None:
            count = self.pending()
            if leftovers and count == 0:
                leftovers = False
            elif not leftovers and count > 0:
                return
            time.sleep(0.002)

    def pending(self) -> int:
        try:
            return int(self.checker.catalog.fetch("SELECT count(*) FROM pending_writes")[0][0])
        except (CatalogError, sqlite3.Error):  # busy, or not created yet
            return 0

    # -- checking --------------------------------------------------------------------------------------

    def record_doctor(self, *, after_kill: bool) -> None:
        diagnosis = self.checker.doctor()
        if after_kill:  # leftovers are allowed here: marked, they are finished by the next open
            found = sorted(c.name for c in diagnosis.checks if not c.ok)
            self.figures.after_kill[", ".join(found) or "clean"] += 1
        elif not diagnosis.ok:
            bad = [f"{c.name}: {c.detail}" for c in diagnosis.checks if not c.ok]
            self.figures.unhealthy_after_write.append(f"step {self.steps}: {'; '.join(bad)}")

    def check_articles(self) -> None:
        catalog = self.checker.catalog
        for article in self.articles:
            found = catalog.resolve(article.url)
            if article.state == "present" and not found:
                self.figures.lost.append(f"step {self.steps}: {article.url}")
            if article.state == "absent" and found:
                self.figures.lost.append(f"step {self.steps}: {article.url} still there after forget")
            if article.state == "present" and found:
                stored = catalog.article(found[0])
                marker = f"Correction {article.version}:" if article.version else "Correction "
                if stored is None or (marker in stored.text) != bool(article.version):
                    self.figures.lost.append(f"step {self.steps}: {article.url} holds another version")

    def finish(self) -> None:
        """Write every article whose last write was killed once more, then check everything."""
        unsure = [a for a in self.articles if a.state == "unsure"]
        if unsure:
            path = self.work / "final.jsonl"
            path.write_text("".join(json.dumps(a.text(self.steps)) + "\n" for a in unsure))
            done = subprocess.run([str(BYLINE), "ingest", str(path)], env=self.env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            for article in unsure:
                article.state, article.version = "present", self.steps
        self.record_doctor(after_kill=False)
        self.check_articles()

    # -- the asker -------------------------------------------------------------------------------------

    def start_asker(self, name: str, pause: float) -> subprocess.Popen[str]:
        (self.work / "stop").unlink(missing_ok=True)
        argv = [sys.executable, __file__, "ask", str(self.home), str(self.work), name, str(pause)]
        asker = subprocess.Popen(argv, env=self.env, text=True)
        deadline = time.monotonic() + 300
        while not (self.work / f"{name}-ready").exists():
            if asker.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("an asker did not start")
            time.sleep(0.1)
        return asker

    def asked(self, askers: int) -> int:
        """Questions asked so far (each asker notes its count now and then)."""
        counts = [self.work / f"asker-{i}.count" for i in range(askers)]
        return sum(int(c.read_text() or 0) for c in counts if c.exists())

    def probe(self, article: Article, ended: float) -> None:
        """Tell the askers to ask about an article just added; each notes when an answer first cites it."""
        self.probes[article.url] = {"url": article.url, "question": article.record["title"], "since": ended}
        self.write_probes()

    def withdraw(self, articles: list[Article]) -> None:
        """No more questions about articles a forget named (it may have removed them)."""
        for article in articles:
            self.probes.pop(article.url, None)
        self.write_probes()

    def write_probes(self) -> None:
        (self.work / "probes.tmp").write_text(json.dumps(list(self.probes.values())))
        (self.work / "probes.tmp").replace(self.work / "probes.json")

    def stop_askers(self, askers: list[subprocess.Popen[str]]) -> None:
        time.sleep(3)  # the last probe gets a few asks
        (self.work / "stop").touch()
        figures = self.figures
        for i, asker in enumerate(askers):
            asker.wait(timeout=300)
            results = json.loads((self.work / f"asker-{i}.json").read_text())
            figures.asks += results["asks"]
            figures.ask_errors += results["errors"]
            figures.empty_index_asks += results["empty"]
            figures.answerable_after += [answered - since for since, answered in results["probes"]]
            figures.never_answered += results["unanswered"]


def ask_forever(home: Path, work: Path, name: str, pause: float) -> None:
    """A warm asker: one Byline asking until told to stop; a probe question alternates with the fixed ones."""
    from bot.app import Byline, EmptyIndexError
    from bot.settings import load_settings
    from ingest.models import SearchFilters

    byline = Byline(load_settings(home=home))
    byline.embedder.embed(["warm up"])
    (work / f"{name}-ready").touch()
    asks, empty, errors = 0, 0, []
    answered: list[tuple[float, float]] = []  # (ingest ended, first answer citing the article)
    waiting: dict[str, tuple[str, float]] = {}  # url -> (question, ingest ended), oldest first
    seen: set[tuple[str, float]] = set()
    turn = 0
    while not (work / "stop").exists():
        time.sleep(pause)  # a steady stream of questions, leaving the writers some of the CPU
        turn += 1
        listed = _read_probes(work)
        waiting = {url: probe for url, probe in waiting.items() if url in listed}
        for url, (probe_question, ended) in listed.items():
            if (url, ended) not in seen:
                seen.add((url, ended))
                waiting[url] = (probe_question, ended)
        since: date | None = None
        if waiting and turn % 2:
            question = next(iter(waiting.values()))[0]
        else:
            question, since = QUESTIONS[turn % len(QUESTIONS)]
        if asks % 50 == 0:
            (work / f"{name}.count").write_text(str(asks))
        try:
            answer = byline.ask(question, filters=SearchFilters(since=since) if since else None)
            asks += 1
        except EmptyIndexError:
            empty += 1
            time.sleep(0.2)
            continue
        except Exception as exc:  # every other error is a failure the run reports
            asks += 1
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
            continue
        for url in {c.url for c in answer.citations if c.url} & set(waiting):
            answered.append((waiting.pop(url)[1], time.time()))
    result = {"asks": asks, "empty": empty, "errors": errors, "probes": answered, "unanswered": sorted(waiting)}
    (work / f"{name}.json").write_text(json.dumps(result))


def _read_probes(work: Path) -> dict[str, tuple[str, float]]:
    """The articles the driver wants asked about: url -> (question, when its ingest ended)."""
    try:
        probes = json.loads((work / "probes.json").read_text())
    except (OSError, ValueError):
        return {}
    return {p["url"]: (p["question"], p["since"]) for p in probes}


if __name__ == "__main__" and sys.argv[1:2] == ["ask"]:
    ask_forever(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
