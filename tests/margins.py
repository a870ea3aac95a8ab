"""How far every quality check clears its threshold, over training seeds and instruction sets.

XLA compiles for the processor it runs on, so the last bits of every sum differ from one CPU to
the next, and over thousands of training steps those bits become different weights. A check that
passes with a thin margin on the machine that tuned it can fail on a learner's laptop. This script
runs the quality checks (the tests marked ``quality``) once per training seed (``--train-seed``)
and per instruction-set setting (``XLA_FLAGS=--xla_cpu_max_isa=...``, which changes the code XLA
generates, as another processor would), records every checked value (``--quality-log``), and
writes a table of the threshold, the value at seed 0 and the worst value of each check.

Usage (from the repository root)::

    python tests/margins.py --seeds 0-4 --isa native,AVX2,SSE4_2 --out docs/margins.md
    python tests/margins.py --seeds 0-2 -k "images" --log margins.jsonl   # a part, kept
    python tests/margins.py --from-log margins.jsonl --out docs/margins.md  # table only

With ``--out``, the table replaces what lies between the file's ``<!-- margins: begin -->`` and
``<!-- margins: end -->`` lines (the prose around them stays), or the whole file if it has none.

Each instruction-set setting gets its own model cache (models trained under one setting are never
reused under another); the seeds of one setting share it, so a second call trains nothing new.
A failing check does not stop the sweep: it shows in the table with a negative margin.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
NATIVE = "native"


def _seeds(text: str) -> list[int]:
    """'0-4' or '0,2,5' (or a mix) as a list of seeds."""
    seeds = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds += range(int(low), int(high or low) + 1)
    return seeds


def isa_flags(isa: str) -> str:
    """XLA_FLAGS for one instruction-set setting: '' for the processor's own."""
    return "" if isa == NATIVE else f"--xla_cpu_max_isa={isa}"


def run_checks(isa: str, seed: int, log: pathlib.Path, cache: pathlib.Path, args) -> float:
    """One pytest run of the quality checks under one setting and seed; returns its seconds."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join(f for f in (env.get("XLA_FLAGS", ""), isa_flags(isa)) if f)
    env["TOYDIFF_CACHE"] = str(cache / isa)
    env.setdefault("MPLBACKEND", "Agg")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "tests",
        "-m",
        args.marker,
        "-q",
        "-p",
        "no:cacheprovider",
    ]
    cmd += ["--train-seed", str(seed), "--quality-log", str(log), "-n", str(args.workers)]
    cmd += ["-k", args.k] if args.k else []
    print(f"[{isa}, seed {seed}] {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    print(f"    {summary}  ({wall:.0f} s)", flush=True)
    return wall


def _setting(row: dict) -> str:
    """The instruction-set setting a logged row was measured under."""
    flags = row.get("xla_flags", "")
    for flag in flags.split():
        if flag.startswith("--xla_cpu_max_isa="):
            return flag.split("=", 1)[1]
    return NATIVE


def table(rows: list[dict]) -> str:
    """A Markdown table: one line per check, its threshold, seed 0's value and the worst."""
    checks = collections.defaultdict(list)
    for row in rows:
        checks[(row["test"], row["check"])].append(row)
    lines = [
        "| test | check | threshold | native, seed 0 | worst (seed, setting) | margin | runs |",
        "|---|---|---|---|---|---|---|",
    ]
    for (test, check), runs in checks.items():
        worst = min(runs, key=lambda r: r["margin"])
        first = [r for r in runs if r["seed"] == 0 and _setting(r) == NATIVE]
        base = f"{first[0]['value']:.4g}" if first else "-"
        flag = "" if worst["ok"] else " **fails**"
        name = test.split("::", 1)[1] if "::" in test else test
        check = check.replace("|", "\\|")  # a pipe in a check's name would end its table cell
        lines.append(
            f"| `{name}` | {check} | {worst['op']} {worst['bound']:g} | {base} | "
            f"{worst['value']:.4g} ({worst['seed']}, {_setting(worst)}){flag} | "
            f"{worst['margin']:+.4g} | {len(runs)} |"
        )
    return "\n".join(lines)


def spread(rows: list[dict]) -> str:
    """Per setting, how many checks ran and how many failed."""
    by = collections.Counter((_setting(r), r["ok"]) for r in rows)
    settings = sorted({s for s, _ in by})
    return ", ".join(
        f"{s}: {by[(s, True)] + by[(s, False)]} checks, {by[(s, False)]} failed" for s in settings
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0-4", help="training seeds, e.g. 0-4 or 0,3 (0-4)")
    parser.add_argument(
        "--isa",
        default=f"{NATIVE},AVX2,SSE4_2",
        help=f"instruction-set settings, comma-separated: {NATIVE} or an --xla_cpu_max_isa value",
    )
    parser.add_argument("-k", default="", help="pytest -k expression: a part of the checks")
    parser.add_argument("-m", dest="marker", default="quality", help="pytest marker (quality)")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (2)")
    parser.add_argument("--log", help="the JSON-lines log to append to (default: a temporary one)")
    parser.add_argument("--cache", help="model caches, one folder per setting (default: temporary)")
    parser.add_argument("--from-log", help="only write the table of this log; run nothing")
    parser.add_argument("--out", help="write the Markdown table here (default: print it)")
    args = parser.parse_args(argv)

    header = []
    if args.from_log:
        log = pathlib.Path(args.from_log)
    else:
        tmp = pathlib.Path(tempfile.mkdtemp(prefix="toydiff-margins-"))
        log = pathlib.Path(args.log) if args.log else tmp / "quality.jsonl"
        cache = pathlib.Path(args.cache) if args.cache else tmp / "cache"
        seeds, settings = _seeds(args.seeds), args.isa.split(",")
        walls = {}
        for isa in settings:
            for seed in seeds:
                walls[isa, seed] = run_checks(isa, seed, log, cache, args)
        total = sum(walls.values())
        header = [
            f"Seeds {args.seeds}; settings {args.isa}; {total / 60:.0f} minutes in all.",
            f"Command: `python tests/margins.py --seeds {args.seeds} --isa {args.isa}"
            + (f" -k '{args.k}'" if args.k else "")
            + "`",
        ]
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    text = "\n\n".join(
        [
            f"Measured {datetime.date.today()} on {_cpu()}, {os.cpu_count()} cores.",
            *header,
            spread(rows),
            table(rows),
        ]
    )
    if args.out:
        write_table(pathlib.Path(args.out), text)
        print(f"wrote {args.out} ({len(rows)} checked values; log {log})")
    else:
        print(text)
    return 0


BEGIN, END = "<!-- margins: begin -->", "<!-- margins: end -->"


def write_table(path: pathlib.Path, text: str) -> None:
    """Write the measured text into ``path``: between its BEGIN and END markers if it has them
    (the prose around them is kept), else as the whole file."""
    old = path.read_text() if path.exists() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        text = f"{head}{BEGIN}\n{text}\n{END}{rest.split(END, 1)[1]}"
    path.write_text(text.rstrip("\n") + "\n")


def _cpu() -> str:
    """The processor's model name (Linux), else the platform's."""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    sys.exit(main())
