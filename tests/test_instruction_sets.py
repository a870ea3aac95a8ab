"""The quality checks again, with XLA's code generation limited to older instruction sets.

XLA compiles for the processor it runs on, so another CPU computes every sum with different last
bits, and thousands of training steps turn those bits into different weights. A learner's laptop
is any CPU. These tests run the quality checks (the tests marked ``quality``) in a fresh pytest
process under ``XLA_FLAGS=--xla_cpu_max_isa=...``, which makes XLA generate code as it would for a
processor without the newer instructions (no AVX-512; or no AVX at all, as on SSE4.2), with a model
cache of their own, so every model is trained again under that setting. They fail listing the
checks that failed there. ``tests/margins.py`` runs the same checks over training seeds as well,
and ``docs/margins.md`` has the margins it measured.

What each setting changes on the development machine (an AMD EPYC with AVX-512): SSE4_2 changes
the trained weights of every model (other last bits in every training step); AVX2 generates the
same code as the machine's own setting there (bit-identical weights), and differs on processors
whose own setting uses 512-bit vectors.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
from margins import isa_flags

REPO = pathlib.Path(__file__).resolve().parents[1]

# (setting, pytest -k selection, id): SSE4_2 (no AVX at all: other weights for every model on any
# recent x86 CPU) runs every 2D quality check and the digits U-Net's, as two tests so CI's two
# workers can share them. AVX2, the shapes U-Net, the CLIP and the text model retrain for several
# minutes more under each setting, past CI's budget: tests/margins.py measures them (AVX2 gives
# the development machine's own weights there) and docs/margins.md records what it found.
SETTINGS = [
    ("SSE4_2", "test_images_quality and not shapes", "SSE4_2-digits"),
    ("SSE4_2", "not images", "SSE4_2-2d"),
]


@pytest.mark.parametrize(
    ("isa", "selection"), [s[:2] for s in SETTINGS], ids=[s[2] for s in SETTINGS]
)
def test_quality_checks_hold_with_an_older_instruction_set(isa, selection, tmp_path):
    log = tmp_path / "quality.jsonl"
    env = {**os.environ, "TOYDIFF_CACHE": str(tmp_path / "cache")}
    env["XLA_FLAGS"] = " ".join(f for f in (env.get("XLA_FLAGS", ""), isa_flags(isa)) if f)
    cmd = [sys.executable, "-m", "pytest", "tests", "-m", "quality", "-q", "-p", "no:cacheprovider"]
    cmd += ["-n", "0", "--quality-log", str(log), "-k", selection]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    output = done.stdout + done.stderr
    assert "Unknown CPU ISA" not in output, f"XLA does not know --xla_cpu_max_isa={isa}"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    failed = [f"{r['test']}: {r['check']} = {r['value']:.4g}, not {r['op']} {r['bound']:g}"
              for r in rows if not r["ok"]]  # fmt: skip
    assert done.returncode == 0 and not failed, (
        f"with XLA limited to {isa}:\n" + "\n".join(failed) + "\n" + output[-3000:]
    )
    # every quality test that ran recorded its checks (none skipped or left out)
    passed = int(re.search(r"(\d+) passed", done.stdout).group(1))
    assert len({r["test"] for r in rows}) == passed >= 5
