"""The classroom: copy the chapters to a folder, open JupyterLab there, and train ahead of time.

- ``copy_notebooks``: the notebooks that ship inside the package, copied to a folder without ever
  overwriting a copy a learner has edited.
- ``lab_url`` and ``launch``: start JupyterLab in that folder, with a token, and say where it is.
- ``CHAPTER_MODELS`` and ``warmup``: every model the chapters train or load, in one place, trained
  into the cache (``$TOYDIFF_CACHE``) once, so a lecture's first demo loads instead of training.

Typical use (``toydiff lab`` and ``toydiff warmup`` do exactly this)::

    from toydiff import lab
    lab.warmup(lab.CHAPTER_MODELS)   # ~10 minutes on a 2-core laptop, then every call is a load
    lab.launch("toydiff-lab")        # prints the URL, then serves until Ctrl-C
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import importlib.util
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from toydiff import training
from toydiff.engine import cache
from toydiff.errors import DataError, ToydiffError
from toydiff.images import clip as clip_lib
from toydiff.images import data as image_data
from toydiff.images import training as image_training
from toydiff.model import GUIDANCE_DEMO, REFERENCE, REFERENCE_CONDITIONAL, REFERENCE_LONG

DEFAULT_DIR = "toydiff-lab"
FIRST_NOTEBOOK = "00_tour.ipynb"

# ----------------------------------------------------------------------------- the notebooks


def notebooks() -> list:
    """The chapter notebooks shipped inside the package, as importlib.resources files, in order."""
    folder = importlib.resources.files("toydiff") / "notebooks"
    return sorted((f for f in folder.iterdir() if f.name.endswith(".ipynb")), key=lambda f: f.name)


def prepare_dir(dest) -> pathlib.Path:
    """Make ``dest`` a writable folder (created if missing); ToydiffError if it cannot be."""
    dest = pathlib.Path(dest).expanduser()
    if dest.exists() and not dest.is_dir():
        raise ToydiffError(
            f"{dest} is a file; give a folder for the notebooks (default ./{DEFAULT_DIR})"
        )
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ToydiffError(f"cannot create the folder {dest}: {err.strerror or err}") from None
    if not os.access(dest, os.W_OK | os.X_OK):
        raise ToydiffError(f"{dest} is not writable; give a folder you can write to")
    return dest


def copy_notebooks(dest) -> tuple[list[pathlib.Path], list[pathlib.Path]]:
    """Copy the chapter notebooks into ``dest``, keeping any copy that is already there.

    A notebook already in ``dest`` is never overwritten, edited or not: it is the learner's copy.
    Delete it to get the original back.

    Args:
        dest: the folder (created if missing).

    Returns:
        ``(copied, kept)``: the paths written now, and the paths that were already there.
    """
    dest = prepare_dir(dest)
    copied, kept = [], []
    for source in notebooks():
        target = dest / source.name
        try:
            with open(target, "xb") as f:  # "x": fails rather than overwrite, even in a race
                f.write(source.read_bytes())
        except FileExistsError:
            kept.append(target)
            continue
        except OSError as err:
            raise ToydiffError(f"cannot write {target}: {err.strerror or err}") from None
        copied.append(target)
    return copied, kept


# ----------------------------------------------------------------------------- JupyterLab


def lab_url(port: int, token: str, ip: str = "127.0.0.1", notebook: str = FIRST_NOTEBOOK) -> str:
    """The address that opens ``notebook`` in JupyterLab, token included.

    A wildcard ``ip`` (0.0.0.0, ::, or empty) listens everywhere; the URL then names this machine
    as 127.0.0.1, which works from a browser on the same machine.
    """
    host = "127.0.0.1" if ip in ("", "0.0.0.0", "*") else "[::1]" if ip == "::" else ip
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"http://{host}:{port}/lab/tree/{notebook}?token={token}"


def free_port(ip: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (the system picks it)."""
    with socket.socket(_family(ip), socket.SOCK_STREAM) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def _family(ip: str) -> int:
    """The socket family of an address."""
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def check_port(port: int, ip: str = "127.0.0.1") -> None:
    """ToydiffError unless ``port`` on ``ip`` can be listened on now."""
    if not 1 <= port <= 65535:
        raise ToydiffError(f"--port must be between 1 and 65535, got {port}")
    with socket.socket(_family(ip), socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Jupyter binds
        try:
            s.bind((ip, port))
        except OSError as err:
            raise ToydiffError(
                f"cannot listen on {ip}:{port} ({err.strerror or err}); choose another --port, "
                "or leave it out for a free one"
            ) from None


def lab_command(dest, port: int, ip: str, open_browser: bool) -> list[str]:
    """The command line that starts JupyterLab serving ``dest`` (the token goes in the env)."""
    command = [
        sys.executable, "-m", "jupyterlab",
        f"--ServerApp.root_dir={dest}",
        f"--ServerApp.ip={ip}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",  # another port would not match the URL we printed
        f"--ServerApp.open_browser={open_browser}",
        f"--LabApp.default_url=/lab/tree/{FIRST_NOTEBOOK}",
        "--ServerApp.answer_yes=True",  # one Ctrl-C stops it, without a y/n question
        # Nothing reaches out at run time: no news feed (even if a learner says yes to the
        # news prompt) and no check for a newer JupyterLab.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # Jupyter refuses root otherwise (as in many containers)
    return command


def launch(
    dest=DEFAULT_DIR,
    port: int | None = None,
    token: str | None = None,
    open_browser: bool = True,
    ip: str = "127.0.0.1",
    announce: Callable[[dict], None] | None = None,
) -> int:
    """Copy the notebooks into ``dest``, start JupyterLab there, print its URL, and serve.

    Blocks until JupyterLab stops (Ctrl-C, or SIGTERM to this process, which is passed on).
    Everything that can be checked (the folder, the port, JupyterLab being installed) is checked
    before anything starts.

    Args:
        dest: the folder to copy the notebooks into and serve.
        port: the port; None picks a free one.
        token: the login token; None makes a random one.
        open_browser: open the tour in a web browser.
        ip: the address to listen on (0.0.0.0 for every interface, as in a container).
        announce: called with ``url``, ``dir``, ``port``, ``copied`` and ``kept`` just before
            JupyterLab starts; None prints two lines.

    Returns:
        JupyterLab's exit status.
    """
    if importlib.util.find_spec("jupyterlab") is None:
        raise ToydiffError(
            "JupyterLab is not installed here; run `python -m pip install jupyterlab`"
        )
    if port is not None:
        check_port(port, ip)  # before the folder is made: a refused command leaves nothing
    prepare_dir(dest)
    if port is None:
        port = free_port(ip)
    copied, kept = copy_notebooks(dest)
    dest = pathlib.Path(dest).expanduser().resolve()
    token = secrets.token_hex(24) if token is None else token
    news = {"url": lab_url(port, token, ip), "dir": str(dest), "port": port}
    (announce or print_news)(
        {**news, "copied": [p.name for p in copied], "kept": [p.name for p in kept]}
    )
    sys.stdout.flush()  # the URL must be out before JupyterLab's log starts
    env = {**os.environ, "JUPYTER_TOKEN": token}  # not on the command line, where `ps` shows it
    return _serve(lab_command(dest, port, ip, open_browser), dest, env)


def print_news(news: dict) -> None:
    """Say what was copied and where the lab is."""
    print(
        f"toydiff lab: {len(news['copied'])} notebooks copied to {news['dir']}, "
        f"{len(news['kept'])} already there kept as they are"
    )
    print(f"toydiff lab: open {news['url']}")


def _serve(command: list[str], cwd, env) -> int:
    """Run JupyterLab until it stops; pass SIGTERM on; after Ctrl-C, wait for it to shut down."""
    proc = subprocess.Popen(command, cwd=cwd, env=env)
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        return proc.wait()
    except KeyboardInterrupt:  # Jupyter got the same Ctrl-C and is shutting down
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.terminate()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


# ----------------------------------------------------------------------------- warm-up


@dataclasses.dataclass(frozen=True)
class ChapterModel:
    """A model a chapter trains or loads through the cache.

    Attributes:
        name: what the model is, for progress lines.
        chapters: the chapter numbers that use it.
        kind: ``"2d"`` (``toydiff.cached_train``), ``"image"`` (``images.cached_train``),
            ``"clip"`` (``images.clip.cached_train``) or ``"text"`` (``images.text_model`` on
            the cached CLIP of ``config``).
        config: the training settings, exactly as the chapter passes them (for ``"text"``, the
            CLIP's settings).
    """

    name: str
    chapters: tuple[int, ...]
    kind: str
    config: object

    def train(self, progress: bool = True):
        """The model, trained now or loaded from the cache."""
        return TRAINERS[self.kind](self.config, progress)

    def missing(self) -> str | None:
        """Why this model cannot be trained here (its data set's optional extra is not
        installed), or None."""
        if self.kind not in ("image", "clip"):
            return None
        try:
            image_data.spec(self.config.data).available()
        except DataError as err:
            return str(err)
        return None


def _text(clip_config, progress):
    """The text-conditioned model of the CLIP's data set (the shapes, or the clips) on the
    cached CLIP trained with ``clip_config``."""
    clip = clip_lib.cached_train(clip_config, progress=progress)
    return image_training.text_model(clip, progress=progress)


NETWORK_NAMES = {"unet": "U-Net", "dit": "transformer"}

TRAINERS: dict[str, Callable] = {
    "2d": lambda c, progress: training.cached_train(c, progress=progress),
    "image": lambda c, progress: image_training.cached_train(c, progress=progress),
    "clip": lambda c, progress: clip_lib.cached_train(c, progress=progress),
    "text": _text,
}

# Every model the notebooks train or load, with the settings they use (tests/test_lab.py reads
# the notebooks and fails if one uses a model missing here). The tour trains REFERENCE live, on
# purpose; warming REFERENCE compiles its training program, so the tour skips compiling.
CHAPTER_MODELS: tuple[ChapterModel, ...] = (
    ChapterModel("spiral, eps (the reference)", (0, 4, 5, 6, 7), "2d", REFERENCE),
    ChapterModel(
        "spiral, naive one-step target",
        (4,),
        "2d",
        dataclasses.replace(REFERENCE, objective="naive"),
    ),
    ChapterModel("spiral, 30,000 steps", (7,), "2d", REFERENCE_LONG),
    ChapterModel(
        "spiral, flow matching",
        (7,),
        "2d",
        dataclasses.replace(REFERENCE, process="flow", objective="velocity"),
    ),
    ChapterModel("3-class spiral, weakly conditioned", (8,), "2d", GUIDANCE_DEMO),
    ChapterModel("3-class spiral", (9,), "2d", REFERENCE_CONDITIONAL),
    # The image data sets' models, as their specs name them (images/data/*.py).
    *(
        ChapterModel(f"toy CLIP on {name}", spec.clip_chapters, "clip", spec.clip_recipe)
        for name, spec in image_data.REGISTRY.items()
        if spec.clip_chapters
    ),
    *(
        ChapterModel(
            f"{name} {NETWORK_NAMES[spec.recipe.network]}", spec.chapters, "image", spec.recipe
        )
        for name, spec in image_data.REGISTRY.items()
        if spec.chapters
    ),
    ChapterModel("shapes transformer", (10,), "image", image_data.spec("shapes").recipes["dit"]),
    ChapterModel("text-to-image shapes U-Net", (11,), "text", clip_lib.clip_config("shapes")),
    ChapterModel("text-to-video clips transformer", (12,), "text", clip_lib.clip_config("clips")),
)


def _cached_runs() -> set[pathlib.Path]:
    """The runs in the model cache now."""
    return set(cache.cache_dir().glob("*/run.toydiff"))


def warmup(
    models: Sequence[ChapterModel] = CHAPTER_MODELS,
    *,
    progress: bool = True,
    log: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train every model in ``models`` into the cache, or load it if it is already there.

    Args:
        models: the models (default: every model the chapters use).
        progress: show training progress bars on stderr.
        log: called with each model's record as soon as it is ready.

    Returns:
        One record per model: ``name``, ``chapters``, ``seconds`` and ``cached`` (True when it was
        loaded, False when it was trained now), and ``skipped`` (why, or None) for a model whose
        data set's optional extra is not installed.
    """
    records = []
    for model in models:
        why = model.missing()
        if why is not None:
            record = {"name": model.name, "chapters": list(model.chapters), "seconds": 0.0}
            records.append({**record, "cached": False, "skipped": why})
            if log is not None:
                log(records[-1])
            continue
        before = _cached_runs()
        t0 = time.perf_counter()
        model.train(progress=progress)
        trained = bool(_cached_runs() - before)
        record = {
            "name": model.name,
            "chapters": list(model.chapters),
            "seconds": time.perf_counter() - t0,
            "cached": not trained,
            "skipped": None,
        }
        records.append(record)
        if log is not None:
            log(record)
    return records
