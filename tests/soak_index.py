"""The long fault-injection run, for the README (not part of `make test`): the real `byline` CLI killed with
SIGKILL at random points of first ingests, update ingests and forgets on one home, at least 200 times, while warm
askers ask throughout (at least 10,000 questions). Prints the figures as JSON: kills survived, articles lost (must
be 0), asks failed (must be 0), the worst time from an ingest's end until an asker's answer cited the new article.

    .venv/bin/python tests/soak_index.py [--kills 200] [--asks 10000] [--askers 2] [--seed 7] [--corpus FILE]

The corpus defaults to the 171 Wikinews 2019 articles of the shared dev data (the seeds' sample if absent). Exit
status 1 when an article was lost, an ask failed, or the index was not whole after a finished write.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faults import Run  # this folder, put on the path above

REPO = Path(__file__).resolve().parent.parent
WIKINEWS = Path("/work/shared/data/wikinews/wikinews-2019.jsonl")
CORPUS = WIKINEWS if WIKINEWS.exists() else REPO / "seeds" / "wikinews-2019-sample.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--asks", type=int, default=10_000)
    parser.add_argument("--askers", type=int, default=2)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds each asker waits between questions")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    records = [json.loads(line) for line in args.corpus.read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory(prefix="byline-soak-") as scratch:
        work = Path(scratch) / "work"
        work.mkdir()
        run = Run(Path(scratch) / "home", work, records, args.seed, verbose=args.verbose)
        figures = run.run(args.kills, kill_share=0.8, askers=args.askers, pause=args.pause, asks=args.asks)
    result = {"corpus": str(args.corpus), "articles": len(records), "seed": args.seed, **figures.to_dict()}
    print(json.dumps(result, indent=1))
    healthy = not figures.lost and not figures.ask_errors and not figures.unhealthy_after_write
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
