"""Real-browser fixtures: JupyterLab on loopback, driven by headless Chromium through Playwright.

- ``lab_server`` (one per session, so one per xdist worker): copies the chapter notebooks into a
  temporary folder and serves it on 127.0.0.1, a free port and a random token. Its settings live
  in a private JUPYTER_CONFIG_DIR: no news or update checks, and every cell kept in the DOM.
- ``browser``: headless Chromium from Debian (``/usr/bin/chromium``); never ``playwright install``.
- ``lab_page``: a fresh browser context on that server. Its methods are the helpers a test uses:
  ``open_notebook``, ``run_all``, ``cell_errors``, ``widget``, ``screenshot``, ``image_digest``,
  ``wait_redrawn`` and ``offsite_requests``. Every request the page makes is recorded.

Screenshots go to $TOYDIFF_ARTIFACTS (default ``test-artifacts/browser/``), with the server's log.
A missing Chromium or playwright fails these tests with a message saying what to install.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import nbformat
import pytest

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
except ImportError:  # reported by the browser fixture, so the tests fail rather than skip
    sync_playwright, PlaywrightError = None, Exception

REPO = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "toydiff" / "notebooks"
ARTIFACTS = pathlib.Path(os.environ.get("TOYDIFF_ARTIFACTS") or REPO / "test-artifacts" / "browser")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # no update, safe-browsing or field-trial fetches
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 2000}  # tall enough for a whole explorer in one shot
SERVER_START_S = 120  # JupyterLab on a busy 2-core CI machine
KERNEL_START_S = 120
RUN_ALL_S = 1200  # a notebook whose models are not cached yet trains them first
REDRAW_S = 180  # an explorer's first move may compile a sampler

# Settings every page of the test server gets (JupyterLab reads these from the config dir).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},  # all cells in the DOM
}
LAB_CONFIG = {
    "ServerApp": {"ip": "127.0.0.1", "port_retries": 0, "open_browser": False},
    "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"},
}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}  # as urlsplit's .hostname gives them
WIDGET_VIEW = ".jp-OutputArea-output > .jupyter-widgets"  # a widget's top-level view


# ----------------------------------------------------------------------------- the server


def lab_command(folder: pathlib.Path, port: int, token: str) -> list[str]:
    """The command line that serves ``folder``: the one place to switch how the server starts.

    ``toydiff lab`` (toydiff/lab.py) is the same JupyterLab with the learner's defaults; this uses
    it when the checkout has it, else plain ``python -m jupyterlab``. Everything else (loopback,
    no news, settings) comes from the private config dir both read.
    """
    if (REPO / "toydiff" / "cli" / "lab.py").exists():
        return [sys.executable, "-m", "toydiff.cli", "lab", str(folder), "--no-browser",
                "--port", str(port), "--token", token]  # fmt: skip
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={folder}",
               f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
               "--no-browser"]  # fmt: skip
    if os.geteuid() == 0:
        command.append("--allow-root")  # JupyterLab refuses root otherwise (CI containers)
    return command


@dataclasses.dataclass
class LabServer:
    """A running JupyterLab: its address, token, notebook folder and process."""

    url: str
    token: str
    folder: pathlib.Path
    proc: subprocess.Popen
    log: pathlib.Path

    def api(self, path: str, method: str = "GET", timeout: float = 10.0):
        """Call the REST API (``/api/<path>``) with the token; the decoded JSON, or None."""
        request = urllib.request.Request(
            f"{self.url}/api/{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def write_notebook(self, name: str, cells: list[str]) -> str:
        """Write a scratch notebook of code cells into the lab folder; returns its name."""
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}  # fmt: skip
        nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        nbformat.write(nb, self.folder / name)
        return name

    def shutdown_kernels(self) -> None:
        """Stop every kernel, so the next test starts on a quiet machine."""
        for kernel in self.api("kernels") or []:
            try:
                self.api(f"kernels/{kernel['id']}", method="DELETE", timeout=30)
            except urllib.error.HTTPError as err:
                if err.code != 404:  # gone already
                    raise

    def tail(self, n: int = 40) -> str:
        """The last n lines of the server's log."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_clean(source: pathlib.Path, dest: pathlib.Path) -> None:
    """Copy a notebook without outputs or execution counts, so a number means "ran here"."""
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, dest)


def _write_config(config_dir: pathlib.Path) -> None:
    """Server options and JupyterLab settings, in the config dir the server reads."""
    for name in ("jupyter_server_config.json", "jupyter_lab_config.json"):
        (config_dir / name).write_text(json.dumps(LAB_CONFIG))
    for plugin, settings in LAB_SETTINGS.items():
        path = config_dir / "lab" / "user-settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))


def _wait_ready(server: LabServer) -> None:
    """Wait until /api/status answers; fail with the log if the process dies or takes too long."""
    deadline = time.monotonic() + SERVER_START_S
    while True:
        if server.proc.poll() is not None:
            pytest.fail(f"JupyterLab exited ({server.proc.returncode}):\n{server.tail()}")
        try:
            server.api("status", timeout=5)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"JupyterLab did not answer in {SERVER_START_S} s:\n{server.tail()}")
        time.sleep(0.25)  # polling interval


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (it shuts its kernels down), then SIGKILL if stuck."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory, request):
    """JupyterLab serving fresh copies of the chapter notebooks on 127.0.0.1 (one per worker)."""
    worker = getattr(request.config, "workerinput", {}).get("workerid", "main")  # xdist's gw0, ...
    root = tmp_path_factory.mktemp("lab")
    folder, config, runtime = root / "notebooks", root / "config", root / "runtime"
    for d in (folder, config, runtime):
        d.mkdir()
    for source in sorted(NOTEBOOKS.glob("*.ipynb")):
        _copy_clean(source, folder / source.name)
    _write_config(config)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / f"jupyterlab-{worker}.log"
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }  # the kernels import this checkout of toydiff and share $TOYDIFF_CACHE with the tests
    port, token = _free_port(), secrets.token_hex(16)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            lab_command(folder, port, token),
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one at the end
        )
    server = LabServer(f"http://127.0.0.1:{port}", token, folder, proc, log)
    try:
        _wait_ready(server)
        yield server
    finally:
        try:
            server.shutdown_kernels()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # the server is gone; killing its group below is all that is left
        _stop(proc)


# ----------------------------------------------------------------------------- the browser


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (Debian's package), launched once per session."""
    if sync_playwright is None:
        pytest.fail("the playwright package is missing: pip install -e '.[test]'", pytrace=False)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}: apt-get install -y chromium "
            "(from Debian; never `playwright install`)",
            pytrace=False,
        )
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so lab_page can save a picture of a failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def lab_page(request, browser, lab_server):
    """A fresh browser context on the lab server; see ``LabPage`` for the helpers."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(60_000)
    tab = LabPage(context.new_page(), lab_server, request.node.name)
    try:
        yield tab
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            tab.save_failure()
        context.close()
        lab_server.shutdown_kernels()


class LabPage:
    """One browser tab on the lab server, with the helpers the browser tests share.

    Attributes:
        page: the Playwright ``Page``.
        server: the ``LabServer``.
        requests: every URL the page requested (HTTP and WebSocket), in order.
        errors: uncaught JavaScript errors on the page.
    """

    def __init__(self, page, server: LabServer, test_name: str):
        self.page, self.server, self.test_name = page, server, test_name
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.notebook: str | None = None
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("websocket", lambda ws: self.requests.append(ws.url))
        page.on("pageerror", lambda err: self.errors.append(str(err)))

    # --------------------------------------------------------------------- notebooks

    def open_notebook(self, name: str) -> None:
        """Open ``name`` (in the lab folder) in its own workspace; wait for its kernel to be idle.

        The toolbar's execution indicator says "idle" before any kernel exists, so readiness is
        the server's word first (a session for this notebook with a connected, idle kernel),
        then the indicator's.
        """
        self.notebook = name
        workspace = re.sub(r"\W", "-", self.test_name)[-60:]  # no state restored from other tests
        query = urllib.parse.urlencode({"token": self.server.token})
        self.page.goto(f"{self.server.url}/lab/workspaces/{workspace}/tree/{name}?{query}")
        self.page.locator(".jp-NotebookPanel .jp-Notebook").wait_for(state="visible")
        deadline = time.monotonic() + KERNEL_START_S
        while not self._kernel_connected(name):
            if time.monotonic() > deadline:
                pytest.fail(f"no kernel connected to {name} in {KERNEL_START_S} s")
            self.page.wait_for_timeout(250)  # polling interval
        self.wait_idle(KERNEL_START_S)

    def _kernel_connected(self, name: str) -> bool:
        """True once the server has a session for name whose kernel is idle with a client."""
        for session in self.server.api("sessions") or []:
            kernel = session.get("kernel") or {}
            if session.get("path") == name and kernel.get("connections", 0) >= 1:
                return kernel.get("execution_state") == "idle"
        return False

    def wait_idle(self, timeout_s: float = REDRAW_S) -> None:
        """Wait until the notebook toolbar's execution indicator says the kernel is idle."""
        self.page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
            state="attached", timeout=timeout_s * 1000
        )

    def run_all(self, timeout_s: float = RUN_ALL_S) -> None:
        """Run > Run All Cells, then wait until the run is over.

        Over means: the kernel is idle, no prompt shows ``[*]``, and at least one shows a number.
        JupyterLab marks every queued cell ``[*]`` at once; after an error the rest go back to
        ``[ ]``, so a failed run ends too, and ``cell_errors`` says what went wrong.
        """
        self.page.get_by_role("menuitem", name="Run", exact=True).click()
        self.page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        self.page.wait_for_function(
            """() => {
                const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
                const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                    .map(p => p.textContent.trim());
                return indicator && indicator.dataset.status === 'idle'
                    && !prompts.some(p => p === '[*]:')
                    && prompts.some(p => /^\\[\\d+\\]:$/.test(p));
            }""",
            timeout=timeout_s * 1000,
            polling=250,
        )

    def save(self) -> None:
        """File > Save Notebook, and wait until the tab is no longer marked as changed."""
        self.page.get_by_role("menuitem", name="File", exact=True).click()
        self.page.get_by_role("menuitem", name=re.compile(r"^Save Notebook\b")).first.click()
        self.page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty").wait_for(state="detached")

    def cell_errors(self) -> list[str]:
        """What went wrong in the last run, one line per problem; [] when every cell ran cleanly.

        The page renders an error exactly like stderr (both ``application/vnd.jupyter.stderr``),
        so the verdict comes from the notebook itself: it is saved, and its error outputs (with
        ``ename`` and ``evalue``) and code cells left unrun are read back. Widgets that failed to
        render in the page (error text in place of the view) count too.
        """
        self.save()
        nb = nbformat.read(self.server.folder / self.notebook, as_version=4)
        problems = []
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            head = cell.source.strip().splitlines()[0][:60]
            if cell.execution_count is None:
                problems.append(f"cell {i} ({head!r}) was not run")
            for out in cell.outputs:
                if out.output_type == "error":
                    problems.append(f"cell {i} ({head!r}): {out.ename}: {out.evalue}")
        for text in self.page.locator(".jp-OutputArea-output").all_inner_texts():
            if re.search(r"Error displaying widget|model not found", text):
                problems.append(f"a widget did not render: {text.strip()[:200]}")
        return problems

    def output(self, source: str):
        """The output area of the code cell whose source contains ``source``."""
        cells = self.page.locator(".jp-CodeCell").filter(
            has=self.page.locator(".jp-InputArea-editor", has_text=source)
        )
        return cells.first.locator(".jp-OutputArea")

    def widget(self, source: str):
        """The rendered ipywidgets view in the output of the cell containing ``source``.

        Waits until its picture has loaded, so a test starts from a drawn explorer.
        """
        view = self.output(source).locator(WIDGET_VIEW).first
        view.locator("img").first.wait_for(state="visible", timeout=REDRAW_S * 1000)
        self.page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0",
            arg=view.locator("img").first.element_handle(),
        )
        return view

    # --------------------------------------------------------------------- explorers

    def image_digest(self, img) -> str:
        """SHA-256 of the bytes behind an <img> (the explorer's PNG), read from its blob URL."""
        return img.evaluate(
            """async img => {
                const bytes = await (await fetch(img.src)).arrayBuffer();
                const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
                return [...hash].map(b => b.toString(16).padStart(2, '0')).join('');
            }"""
        )

    def wait_redrawn(self, img, old_src: str, readout=None, pattern: str = ".*") -> None:
        """Wait for the kernel to redraw: a new picture, ``readout`` matching ``pattern``, idle.

        ipywidgets gives every new picture a new blob URL, and the explorer sets its readout
        before its picture; so a new src, the readout's final text and an idle kernel together
        mean the last redraw has arrived.
        """
        self.page.wait_for_function(
            """([img, old, readout, pattern]) => {
                const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
                return img.src !== old && img.complete && img.naturalWidth > 0
                    && (!readout || new RegExp(pattern).test(readout.textContent))
                    && indicator && indicator.dataset.status === 'idle';
            }""",
            arg=[img.element_handle(), old_src, readout and readout.element_handle(), pattern],
            timeout=REDRAW_S * 1000,
            polling=100,
        )

    # --------------------------------------------------------------------- evidence

    def screenshot(self, element, name: str) -> bytes:
        """Save a PNG of ``element`` as <artifacts>/<test>-<name>.png; returns its bytes."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.test_name}-{name}.png"
        return element.screenshot(path=path)

    def save_failure(self) -> None:
        """Keep what the page showed when a test failed: the notebook (or page) and JS errors."""
        try:
            panel = self.page.locator(".jp-NotebookPanel")
            target = panel.first if panel.count() else self.page.locator("body")
            self.screenshot(target, "failure")
        except PlaywrightError:
            pass  # the page itself is broken; the log and errors below still say why
        if self.errors:
            (ARTIFACTS / f"{self.test_name}-page-errors.txt").write_text("\n".join(self.errors))

    def offsite_requests(self) -> list[str]:
        """Requested URLs that left the loopback server (data: and blob: URLs stay local)."""
        offsite = []
        for url in self.requests:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme in ("data", "blob"):
                continue
            web = parts.scheme in ("http", "https", "ws", "wss")
            if not web or parts.hostname not in LOOPBACK_HOSTS:
                offsite.append(url)
        return offsite
