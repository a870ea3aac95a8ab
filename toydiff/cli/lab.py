"""``toydiff lab`` and ``toydiff warmup``: the classroom.

- ``lab [DIR]``: copy the chapter notebooks to DIR (default ./toydiff-lab) without overwriting a
  learner's copy, start JupyterLab there, and print its URL (``--copy-only``: just copy).
- ``warmup``: train every model the chapters use into the cache, so a lecture's first demo loads.
"""

from __future__ import annotations

import sys

from toydiff.cli.output import emit
from toydiff.errors import ToydiffError

DEFAULT_IP = "127.0.0.1"


def cmd_lab(args):
    from toydiff import lab

    if args.copy_only:
        serving = [
            f"--{name.replace('_', '-')}"
            for name, unset in (("port", None), ("token", None), ("no_browser", False))
            if getattr(args, name) != unset
        ] + (["--ip"] if args.ip != DEFAULT_IP else [])
        if serving:
            verb = "is" if len(serving) == 1 else "are"
            raise ToydiffError(f"{', '.join(serving)} {verb} for serving; --copy-only only copies")
        copied, kept = lab.copy_notebooks(args.dir)
        payload = {
            "dir": args.dir,
            "copied": [p.name for p in copied],
            "kept": [p.name for p in kept],
        }
        text = (
            f"toydiff lab: {len(copied)} notebooks copied to {args.dir}, "
            f"{len(kept)} already there kept as they are"
        )
        emit(args, payload, text)
        return

    def announce(news):
        if args.json:
            emit(args, news, "")
        else:
            lab.print_news(news)

    status = lab.launch(
        args.dir,
        port=args.port,
        token=args.token,
        open_browser=not args.no_browser,
        ip=args.ip,
        announce=announce,
    )
    if status not in (0, None):
        raise ToydiffError(f"JupyterLab stopped with exit status {status} (its log is above)")


def _chapters(chapters) -> str:
    return ("chapter " if len(chapters) == 1 else "chapters ") + ", ".join(map(str, chapters))


def cmd_warmup(args):
    from toydiff import lab
    from toydiff.engine import checkpoint
    from toydiff.engine.cache import cache_dir

    models = lab.CHAPTER_MODELS
    if args.list:
        payload = {
            "cache": str(cache_dir()),
            "models": [
                {"name": m.name, "chapters": list(m.chapters), "kind": m.kind} for m in models
            ],
        }
        lines = [f"{m.name} ({_chapters(m.chapters)})" for m in models]
        emit(args, payload, "\n".join(lines + [f"cache: {cache_dir()}"]))
        return
    checkpoint.check_writable(cache_dir())  # before the first model trains, not after it
    out = sys.stderr if args.json else sys.stdout
    done = []

    def log(record):  # a line per model as it finishes; stderr with --json
        done.append(record)
        how = "already cached" if record["cached"] else "trained"
        if record["skipped"]:
            how = f"skipped ({record['skipped']})"
        print(
            f"[{len(done)}/{len(models)}] {record['name']} ({_chapters(record['chapters'])}): "
            f"{how}, {record['seconds']:.1f} s",
            file=out,
            flush=True,
        )

    records = lab.warmup(models, progress=not args.quiet, log=log)
    total = sum(r["seconds"] for r in records)
    trained = sum(not r["cached"] and not r["skipped"] for r in records)
    skipped = sum(bool(r["skipped"]) for r in records)
    payload = {"cache": str(cache_dir()), "models": records, "total_s": total}
    emit(
        args,
        payload,
        f"warm-up done: {len(records) - skipped} models in {total:.1f} s ({trained} trained now, "
        f"{len(records) - trained - skipped} already cached"
        + (f", {skipped} skipped" if skipped else "")
        + f") in {cache_dir()}",
    )


def add_parser(sub, verb) -> None:
    """Add ``toydiff lab`` and ``toydiff warmup``."""
    p = verb(sub, "lab", cmd_lab, "copy the chapter notebooks to DIR and open JupyterLab there")
    p.add_argument(
        "dir", nargs="?", default="toydiff-lab", help="folder for the notebooks (./toydiff-lab)"
    )
    p.add_argument("--port", type=int, help="port to serve on (default: a free one)")
    p.add_argument("--ip", default=DEFAULT_IP, help="address to listen on (0.0.0.0: all)")
    p.add_argument("--token", help="login token (default: a random one)")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    p.add_argument(
        "--copy-only",
        action="store_true",
        help="copy the notebooks and stop (for a JupyterHub's start-up hook)",
    )

    p = verb(
        sub,
        "warmup",
        cmd_warmup,
        "train and cache every model the chapters use (about 10 minutes on a 2-core CPU, once)",
    )
    p.add_argument(
        "--list", "--dry-run", action="store_true", help="list the models; train nothing"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
