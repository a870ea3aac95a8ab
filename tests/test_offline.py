"""The lab runs with the network cut: only loopback works, and a notebook runs top to bottom."""

import os
import pathlib
import subprocess
import sys

import pytest

from toydiff import offline

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROBE = """
import os, socket
print("env", os.environ.get("TOYDIFF_OFFLINE"))
try:
    socket.create_connection(("192.0.2.1", 80), timeout=3)
    print("outside reachable")
except OSError as err:
    print("outside", err.errno)
try:
    socket.getaddrinfo("pypi.org", 443)
    print("dns resolves")
except OSError:
    print("dns fails")
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
socket.create_connection(server.getsockname(), timeout=3).close()
print("loopback ok")
"""


def _offline(*argv, **kwargs):
    return subprocess.run(offline.wrap(list(argv)), capture_output=True, text=True, **kwargs)


def test_the_cut_network_has_only_loopback():
    run = _offline(sys.executable, "-c", PROBE, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.split("\n")
    assert "env 1" in lines and "loopback ok" in lines and "dns fails" in lines
    assert "outside reachable" not in lines and "outside 101" in lines  # ENETUNREACH


def test_a_notebook_with_widgets_runs_with_the_network_cut(tmp_path):
    """Chapter 2 (data, oracle, sampler, and the noise explorer's widgets) under ``unshare``."""
    script = (
        "import nbclient, nbformat, sys\n"
        "nb = nbformat.read(sys.argv[1], as_version=4)\n"
        "nbclient.NotebookClient(nb, timeout=600, kernel_name='python3',"
        " resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
        "print('cells', len(nb.cells))\n"
    )
    notebook = ROOT / "toydiff" / "notebooks" / "02_image_space.ipynb"
    run = _offline(sys.executable, "-c", script, str(notebook), str(tmp_path), timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("cells ")


def test_ci_runs_the_whole_suite_with_the_network_cut():
    """.ci/run wraps the test command in toydiff.offline; under it, this process is offline."""
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m toydiff.offline python -m pytest tests notebooks" in ci
    if os.environ.get(offline.ENV) == "1":  # running inside it (CI): check for real
        with pytest.raises(OSError):
            import socket

            socket.create_connection(("192.0.2.1", 80), timeout=3)


def test_usage_errors():
    with pytest.raises(SystemExit, match="usage"):
        offline.main([])
