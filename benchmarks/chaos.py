"""Full-size chaos run: 2,000 mixed operations against the served emulator, ~20% faulted.

Run from the repository root (needs the dev extras: the scenario lives in ``tests/test_chaos.py``,
which runs it at a reduced size in CI)::

    python benchmarks/chaos.py                       # 2,000 operations, seed 20240601
    python benchmarks/chaos.py --ops 5000 --seed 7 --concurrency 64

Prints the counts (operations by kind, faults injected per kind, successes, failures by
exception type and ``may_have_been_applied``, duplicates, failed reads, open connections,
``.part`` files) and exits with status 1 if any expectation was violated (listed as PROBLEM
lines). See ``tests/test_chaos.py`` for what is checked.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_chaos import CLIENT_SECRET, ChaosConfig, run_chaos


def main(argv: list[str] | None = None) -> int:
    """Run the chaos scenario, print the counts; 1 if any expectation was violated."""
    parser = argparse.ArgumentParser(description="falcon-mc chaos run against the emulator")
    parser.add_argument("--ops", type=int, default=2000, help="operations (default 2000)")
    parser.add_argument("--seed", type=int, default=ChaosConfig.seed)
    parser.add_argument("--concurrency", type=int, default=ChaosConfig.concurrency,
                        help="operations in flight at once")
    args = parser.parse_args(argv)
    config = ChaosConfig(ops=args.ops, seed=args.seed, concurrency=args.concurrency)
    with tempfile.TemporaryDirectory(prefix="falcon-mc-chaos-") as tmp:
        report = anyio.run(run_chaos, config, Path(tmp))
    text = report.format()
    print(text)
    if CLIENT_SECRET in text:
        print("PROBLEM: the client secret appears in the report", file=sys.stderr)
        return 1
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
