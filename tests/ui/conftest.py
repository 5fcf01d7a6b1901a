"""Fixtures and helpers for the real-browser UI test level.

The UI level starts one throw-away JupyterLab server per test session (listening on
127.0.0.1 only, on a free port, with every Jupyter directory redirected to a temp dir)
and drives it with Debian's Chromium through Playwright's sync API.

Fixtures
--------
jupyter_lab
    Session-scoped running server, a :class:`JupyterLab` record.
browser
    Session-scoped Playwright ``Browser`` (``/usr/bin/chromium``, headless).
page
    Function-scoped ``Page`` (1400x1000) in a fresh browser context. On teardown the
    page is closed and every kernel session on the server is shut down.

ui
    Session-scoped :class:`UiHelpers` namespace with the helpers below; use it instead of
    ``from conftest import ...`` (which depends on pytest's import mode).

Helpers
-------
open_notebook(page, lab, name, timeout=60)
    Open ``name`` (relative to ``lab.root``) and wait for a connected, idle kernel.
run_all(page, timeout=180)
    Run all cells through the "Run" menu and wait until execution has finished.
error_outputs(page, include_stderr=True)
    Texts of traceback (and optionally stderr) outputs of the open notebook.
kernel_state(page)
    Document/kernel state of the current widget, read through ``window.jupyterapp``.
screenshot(page, tmp_path, name)
    Save a PNG under the test's ``tmp_path``.

The server runs with ``--LabApp.expose_app_in_browser=True`` (as galata does), so the
helpers can read kernel status and outputs from the application instead of guessing
from the DOM. Kernels inherit ``WORKBENCH_WORKSPACE`` and a ``PYTHONPATH`` starting with
the repository root (the project is not installed into the venv).

If ``/usr/bin/chromium`` is missing, the whole level is skipped, except when the ``CI``
environment variable is set, in which case the browser fixture fails instead.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1400, "height": 1000}
SERVER_START_TIMEOUT = 90.0
KERNEL_IDLE_TIMEOUT = 60.0
RUN_ALL_TIMEOUT = 180.0

# JupyterLab user settings written into the temp settings dir.
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    # All cells attached to the DOM (no virtual scrolling).
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    # No network look-ups and no notification pop-ups covering the page.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "checkForUpdates": False,
        "fetchNews": "false",
    },
}

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _ci() -> bool:
    """Return whether we run under CI (``CI`` set to anything but an off value)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every test of this directory when Chromium is missing outside CI."""
    if CHROMIUM.exists() or _ci():
        return
    here = Path(__file__).resolve().parent
    skip = pytest.mark.skip(
        reason=f"UI level needs Debian's Chromium at {CHROMIUM} "
        "(apt-get install -y chromium); skipped because CI is not set"
    )
    for item in items:
        if here in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)


# --------------------------------------------------------------------------- server


@dataclass(frozen=True)
class JupyterLab:
    """A running throw-away JupyterLab server.

    Attributes
    ----------
    url
        Base URL without trailing slash, e.g. ``http://127.0.0.1:41234``.
    root
        Server root dir: a temp copy of the project's ``notebooks/`` folder.
    workspace
        Temp dir exported to the server and its kernels as ``WORKBENCH_WORKSPACE``.
    log
        File receiving the server's stdout and stderr.
    pid
        PID of the server process (leader of its own process group).
    """

    url: str
    root: Path
    workspace: Path
    log: Path
    pid: int

    def api(self, path: str, method: str = "GET", timeout: float = 10.0) -> Any:
        """Call the server's REST API and return the decoded JSON (or ``None``).

        Parameters
        ----------
        path
            Path below the base URL, e.g. ``"/api/sessions"``.
        method
            HTTP method.
        timeout
            Socket timeout in seconds.

        Returns
        -------
        Any
            Decoded JSON body, ``None`` for an empty body.
        """
        req = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 60) -> str:
        """Return the last ``n`` lines of the server log."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "<no server log>"
        return "\n".join(lines[-n:])

    def shutdown_kernels(self) -> None:
        """Delete every session and kernel on the server (best effort)."""
        with contextlib.suppress(OSError, ValueError, urllib.error.URLError):
            for session in self.api("/api/sessions"):
                with contextlib.suppress(OSError, urllib.error.URLError):
                    self.api(f"/api/sessions/{session['id']}", method="DELETE", timeout=30)
            for kernel in self.api("/api/kernels"):
                with contextlib.suppress(OSError, urllib.error.URLError):
                    self.api(f"/api/kernels/{kernel['id']}", method="DELETE", timeout=30)


def _free_port() -> int:
    """Return a currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, n: int = 60) -> str:
    """Return the last ``n`` lines of a text file."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "<no log>"


def _child_pids(pid: int) -> list[int]:
    """Return the PIDs of the direct children of ``pid`` (Linux ``/proc``)."""
    children: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (field 2) may contain spaces; fields after ")" are fixed.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _pid_alive(pid: int) -> bool:
    """Return whether ``pid`` still exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _stop_server(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Stop the server by its own PID/process group, then any leftover kernels by PID."""
    if proc.poll() is not None:
        return
    kernels = _child_pids(proc.pid)  # kernels run in their own sessions: stop them by PID
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while any(_pid_alive(k) for k in kernels) and time.monotonic() < deadline:
        time.sleep(0.1)
    for k in kernels:
        if _pid_alive(k):
            with contextlib.suppress(ProcessLookupError):
                os.kill(k, signal.SIGKILL)


@contextlib.contextmanager
def start_lab(base: Path) -> Iterator[JupyterLab]:
    """Start a throw-away JupyterLab under ``base`` (copy of notebooks/, fresh workspace and
    Jupyter dirs, 127.0.0.1, no token); stop it and its kernels by PID on exit.

    Raises
    ------
    RuntimeError
        If the server exits or does not answer during start-up (with the log's tail).
    """
    root = base / "notebooks"
    if NOTEBOOKS_DIR.is_dir():
        shutil.copytree(NOTEBOOKS_DIR, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    else:
        root.mkdir()
    workspace = base / "workspace"
    settings = base / "lab-settings"
    dirs = {name: base / name for name in ("config", "data", "runtime", "lab-workspaces")}
    for path in (workspace, settings, *dirs.values()):
        path.mkdir(parents=True, exist_ok=True)
    for rel, content in LAB_SETTINGS.items():
        target = settings / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(content, indent=2))

    env = os.environ.copy()
    env.update(
        WORKBENCH_WORKSPACE=str(workspace),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(dirs["lab-workspaces"]),
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        # Kernels import this checkout's ``workbench`` even where it is not installed.
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p),
        PYTHONUNBUFFERED="1",
    )
    env.pop("JUPYTER_PATH", None)
    env.pop("JUPYTER_CONFIG_PATH", None)

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = base / "jupyter-lab.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--IdentityProvider.token=",  # ServerApp.token is deprecated in jupyter_server 2
        "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True",
        "--allow-root",
        f"--ServerApp.root_dir={root}",
        # window.jupyterapp: lets helpers read the notebook model (as galata does).
        "--LabApp.expose_app_in_browser=True",
    ]
    with log.open("wb") as log_fh:
        proc = subprocess.Popen(
            cmd,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group, pgid == pid
        )
    lab = JupyterLab(url=url, root=root, workspace=workspace, log=log, pid=proc.pid)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with code {proc.returncode} during start-up.\n"
                    f"--- {log} ---\n{_tail(log)}"
                )
            try:
                lab.api("/api/status", timeout=2)
                break
            except (OSError, ValueError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"JupyterLab did not answer {url}/api/status within "
                        f"{SERVER_START_TIMEOUT:.0f}s.\n--- {log} ---\n{_tail(log)}"
                    ) from None
                time.sleep(0.25)
        specs = lab.api("/api/kernelspecs")
        if "python3" not in specs.get("kernelspecs", {}):
            raise RuntimeError(f"kernelspec python3 not found: {sorted(specs['kernelspecs'])}")
        yield lab
    finally:
        lab.shutdown_kernels()
        _stop_server(proc)


@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """A throw-away JupyterLab server for the session (see :func:`start_lab`).

    Yields
    ------
    JupyterLab
        The running server (``.url``, ``.root``, ``.workspace``, ``.log``, ``.pid``).
    """
    with start_lab(tmp_path_factory.mktemp("jupyter_lab")) as lab:
        yield lab


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Launch headless Debian Chromium through Playwright for the session.

    Yields
    ------
    playwright.sync_api.Browser
        The launched browser.
    """
    if not CHROMIUM.exists():
        pytest.fail(f"CI is set but {CHROMIUM} is missing (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, jupyter_lab: JupyterLab) -> Iterator[Any]:
    """Open a fresh 1400x1000 page; shut down all kernels afterwards.

    Browser console errors and uncaught page errors are collected in
    ``page.wb_console_errors`` (a list of strings), and the widget messages between page and
    kernel in ``page.wb_widget_trace`` (see :func:`_trace_frame`), for diagnostics.

    Parameters
    ----------
    browser
        Session browser fixture.
    jupyter_lab
        Session server fixture.

    Yields
    ------
    playwright.sync_api.Page
        The page.
    """
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.wb_console_errors = errors
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    trace: list[str] = []
    pg.wb_widget_trace = trace
    t0 = time.monotonic()

    def on_socket(ws: Any) -> None:
        ws.on("framereceived", lambda p: _trace_frame(trace, t0, "<", p))
        ws.on("framesent", lambda p: _trace_frame(trace, t0, ">", p))

    pg.on("websocket", on_socket)
    try:
        yield pg
    finally:
        context.close()
        jupyter_lab.shutdown_kernels()


def _trace_frame(trace: list[str], t0: float, way: str, payload: Any) -> None:
    """Append one line per widget-related kernel message of a websocket frame: comm open,
    close and msg, widget displays, and the execution and status messages between them
    (``"12.345 < comm_open <comm id> <model class>"``). Frames in the
    ``v1.kernel.websocket.jupyter.org`` protocol (JupyterLab 4) and in plain JSON are read;
    anything else is skipped. The trace tells a widget the kernel closed from one whose
    opening message never reached the page."""
    try:
        if isinstance(payload, (bytes, bytearray)):
            n = int.from_bytes(payload[:8], "little")
            offs = [int.from_bytes(payload[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(n)]
            # offsets of channel, header, parent header, metadata, content, buffers..., end
            parts = [bytes(payload[a:b]) for a, b in itertools.pairwise(offs)]
            header, content = json.loads(parts[1]), json.loads(parts[4])
        else:
            msg = json.loads(payload)
            header, content = msg.get("header", {}), msg.get("content", {})
        kind = header.get("msg_type", "")
        if kind.startswith("comm_"):
            data = content.get("data") or {}
            what = (data.get("state") or {}).get("_model_name", "") or data.get("method", "")
            line = f"{kind} {content.get('comm_id', '')} {what}"
        elif kind in ("display_data", "execute_result", "update_display_data"):
            data = content.get("data") or {}
            model = (data.get("application/vnd.jupyter.widget-view+json") or {}).get("model_id")
            if not model:
                return
            line = f"{kind} {model}"
        elif kind == "status":
            line = f"status {content.get('execution_state')}"
        elif kind in ("execute_request", "execute_input", "execute_reply"):
            line = f"{kind} {content.get('execution_count', '')} {content.get('status', '')}"
        else:
            return
        trace.append(f"{time.monotonic() - t0:8.3f} {way} {line}")
    except (ValueError, KeyError, IndexError, TypeError):
        return


# --------------------------------------------------------------------------- helpers

_PANEL = "#jp-main-dock-panel .jp-NotebookPanel"

# Execution state of the current notebook panel, read from the DOM.
_RUN_STATE_JS = """
() => {
  const panels = [...document.querySelectorAll('#jp-main-dock-panel .jp-NotebookPanel')];
  const panel = panels.find(p => !p.classList.contains('lm-mod-hidden')) || panels[0];
  if (!panel) return {panel: false};
  const ind = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  const prompts = [];
  for (const cell of panel.querySelectorAll('.jp-Notebook .jp-CodeCell')) {
    const src = cell.querySelector('.jp-InputArea-editor');
    const prompt = cell.querySelector('.jp-InputArea-prompt');
    prompts.push({
      prompt: prompt ? prompt.textContent.trim() : '',
      empty: !src || src.textContent.trim() === '',
    });
  }
  return {panel: true, status: ind ? ind.getAttribute('data-status') : null, prompts};
}
"""


# Document/kernel state of the current main-area widget (``window.jupyterapp``).
_KERNEL_STATE_JS = """
() => {
  const app = window.jupyterapp;
  if (!app || !app.shell) return {app: false};
  const w = app.shell.currentWidget;
  if (!w || !w.context || !w.sessionContext) return {app: true, widget: false};
  const k = w.sessionContext.session ? w.sessionContext.session.kernel : null;
  return {
    app: true,
    widget: true,
    path: w.context.path,
    ready: w.context.isReady && w.sessionContext.isReady,
    kernel: k ? k.status : null,
    connection: k ? k.connectionStatus : null,
  };
}
"""


def kernel_state(page: Any) -> dict[str, Any]:
    """Return the document and kernel state of the current main-area widget.

    Parameters
    ----------
    page
        Playwright page showing JupyterLab.

    Returns
    -------
    dict
        Keys ``app``, ``widget``, ``path``, ``ready``, ``kernel`` (kernel status such as
        ``"idle"`` or ``"busy"``) and ``connection`` (``"connected"`` when usable).
    """
    return page.evaluate(_KERNEL_STATE_JS)


def _kernel_idle(state: dict[str, Any]) -> bool:
    """Return whether a :func:`kernel_state` result shows a connected, idle kernel."""
    return bool(
        state.get("ready")
        and state.get("kernel") == "idle"
        and state.get("connection") == "connected"
    )


def open_notebook(
    page: Any, lab: JupyterLab, name: str, timeout: float = KERNEL_IDLE_TIMEOUT
) -> Any:
    """Open a notebook in JupyterLab and wait for its kernel to be idle.

    The layout state is reset (``?reset``) so no previously opened documents come back.
    A "Select Kernel" dialog (notebook without kernel metadata) is accepted, which picks
    the default ``python3`` kernel.

    Parameters
    ----------
    page
        Playwright page.
    lab
        Running server.
    name
        Notebook path relative to ``lab.root``.
    timeout
        Seconds to wait for the panel and the idle kernel.

    Returns
    -------
    playwright.sync_api.Locator
        Locator of the notebook panel.
    """
    path = urllib.parse.quote(name)
    page.goto(f"{lab.url}/lab/tree/{path}?reset", timeout=timeout * 1000)
    panel = page.locator(_PANEL).first
    panel.wait_for(state="visible", timeout=timeout * 1000)
    accept = page.locator(".jp-Dialog .jp-mod-accept")
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    stable_since: float | None = None
    while True:
        state = kernel_state(page)
        if _kernel_idle(state) and state.get("path") == name:
            # Require a short stable period: a kernel that has just been started reports
            # idle between its start-up messages, and the page's widget manager connects to it
            # then (a widget displayed before that can fail to draw: "model not found").
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= 1.5:
                break
        else:
            stable_since = None
        if accept.count() and accept.first.is_visible():
            accept.first.click()
        if time.monotonic() > deadline:
            raise AssertionError(
                f"kernel of {name} not idle after {timeout:.0f}s: {state}\n"
                f"--- server log ---\n{lab.log_tail(30)}"
            )
        page.wait_for_timeout(100)
    return panel


def _menu_run_all(page: Any) -> None:
    """Click "Run" -> "Run All Cells" in the main menu bar."""
    page.locator("#jp-menu-panel .lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).first.click()


def run_all(page: Any, timeout: float = RUN_ALL_TIMEOUT) -> None:
    """Run all cells of the current notebook and wait until execution has finished.

    Finished means: no ``[*]`` prompt, the kernel is connected and idle, and every
    non-empty code cell has an execution count (or the run stopped at a traceback),
    stable for one second.

    Parameters
    ----------
    page
        Playwright page with a notebook opened by :func:`open_notebook`.
    timeout
        Seconds to wait for the run to finish.

    Raises
    ------
    AssertionError
        If execution does not finish in time.
    """
    _menu_run_all(page)
    deadline = time.monotonic() + timeout
    stable_since: float | None = None
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = {**page.evaluate(_RUN_STATE_JS), **kernel_state(page)}
        prompts = state.get("prompts", [])
        busy = any("*" in p["prompt"] for p in prompts)
        pending = [p for p in prompts if not p["empty"] and not re.search(r"\[\d+\]", p["prompt"])]
        done = _kernel_idle(state) and not busy
        if done and pending and not error_outputs(page, include_stderr=False):
            done = False  # not started yet (or still queued)
        if done:
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= 1.0:
                return
        else:
            stable_since = None
        page.wait_for_timeout(200)
    print_widget_trace(page)
    raise AssertionError(f"notebook still running after {timeout:.0f}s: {state}")


_MODEL_ERRORS_JS = """
(includeStderr) => {
  const app = window.jupyterapp;
  const widget = app && app.shell.currentWidget;
  const model = widget && widget.content && widget.content.model;
  if (!model || typeof model.toJSON !== 'function') return null;
  const found = [];
  model.toJSON().cells.forEach((cell, index) => {
    for (const out of cell.outputs || []) {
      if (out.output_type === 'error') {
        found.push(`cell ${index}: ${out.ename}: ${out.evalue}\\n${out.traceback.join('\\n')}`);
      } else if (includeStderr && out.output_type === 'stream' && out.name === 'stderr') {
        const text = Array.isArray(out.text) ? out.text.join('') : out.text;
        found.push(`cell ${index} stderr: ${text}`);
      }
    }
  });
  return found;
}
"""


def error_outputs(page: Any, include_stderr: bool = True) -> list[str]:
    """Return the texts of error outputs of the current notebook.

    Tracebacks (``output_type == "error"``) are read from the notebook model through
    ``window.jupyterapp``; if that is unavailable, the DOM outputs with mime type
    ``application/vnd.jupyter.stderr`` (tracebacks *and* stderr) are returned.

    Parameters
    ----------
    page
        Playwright page with an open notebook.
    include_stderr
        Also return ``stderr`` stream outputs (warnings, progress bars, logging).

    Returns
    -------
    list[str]
        One string per output, ANSI colour codes removed.
    """
    found = page.evaluate(_MODEL_ERRORS_JS, include_stderr)
    if found is None:
        loc = page.locator(
            f'{_PANEL} .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
        )
        found = loc.all_inner_texts()
    return [_ANSI.sub("", text) for text in found]


def screenshot(page: Any, tmp_path: Path, name: str = "page.png") -> Path:
    """Save a full-page PNG screenshot under ``tmp_path``.

    Parameters
    ----------
    page
        Playwright page.
    tmp_path
        The test's ``tmp_path``.
    name
        File name (``.png`` is appended when missing).

    Returns
    -------
    Path
        Path of the written file.
    """
    path = tmp_path / (name if name.endswith(".png") else f"{name}.png")
    page.screenshot(path=str(path), full_page=True)
    return path


# Controls whose text must never be cut: buttons, labels, readouts, dropdowns, toggles.
_CONTROLS = (
    "button, .widget-label, .widget-readout, .widget-dropdown select, .widget-toggle-button,"
    " .widget-html-content, .widget-checkbox label"
)

# Views that draw many tiles from one HTML value (``HtmlBoard``, the labelers' card) carry the
# class ``wb-html-board``; every element there holding text is checked like a control, and also
# for being cut by an ancestor (``overflow: hidden``) inside the view.
_BOARD = ".wb-html-board"

_LAYOUT_JS = """([root, controls, board]) => {
  const out = {clipped: [], overlapping: []};
  const box = document.querySelector(root);
  if (!box) return {missing: root};
  const hasText = e => [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
  const inBoards = [...box.querySelectorAll(board)]
    .flatMap(b => [...b.querySelectorAll('*')].filter(hasText));
  const visible = e => { const r = e.getBoundingClientRect();
    const st = getComputedStyle(e);
    return r.width > 0 && r.height > 0 && st.visibility !== 'hidden' && st.display !== 'none'; };
  const name = e => (e.className && e.className.baseVal === undefined ? e.className : e.tagName)
    + ' "' + (e.innerText || e.value || '').slice(0, 40) + '"';
  // Scrolled out of a scroll container: not on screen, so it can overlap nothing.
  const shown = e => { const r = e.getBoundingClientRect();
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      const st = getComputedStyle(a);
      if (/(auto|scroll|hidden)/.test(st.overflowX + st.overflowY)) {
        const q = a.getBoundingClientRect();
        if (r.bottom <= q.top || r.top >= q.bottom || r.right <= q.left || r.left >= q.right)
          return false;
      }
    }
    return true; };
  const els = [...new Set([...box.querySelectorAll(controls), ...inBoards])].filter(visible);
  for (const e of els) {
    const cut = e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'auto'
      && getComputedStyle(e).overflowX !== 'scroll';
    if (cut) out.clipped.push(name(e) + ` (${e.scrollWidth} > ${e.clientWidth})`);
  }
  // Text inside a board cut by an ancestor that hides its overflow (a tile, a caption box);
  // reported once, as cut: the part drawn outside its box is not on screen to overlap.
  const cut = new Set();
  for (const e of inBoards.filter(visible)) {
    const r = e.getBoundingClientRect();
    for (let a = e.parentElement; a && a !== box.parentElement; a = a.parentElement) {
      const st = getComputedStyle(a);
      const q = a.getBoundingClientRect();
      const hideX = /(hidden|clip)/.test(st.overflowX), hideY = /(hidden|clip)/.test(st.overflowY);
      if ((hideX && (r.right > q.right + 1 || r.left < q.left - 1))
          || (hideY && (r.bottom > q.bottom + 1 || r.top < q.top - 1))) {
        out.clipped.push(name(e) + ' (cut by ' + name(a) + ')');
        cut.add(e);
        break;
      }
    }
  }
  const leaves = els.filter(e => shown(e) && !cut.has(e)
    && !els.some(o => o !== e && e.contains(o)));
  for (let i = 0; i < leaves.length; i++) for (let j = i + 1; j < leaves.length; j++) {
    const a = leaves[i].getBoundingClientRect(), b = leaves[j].getBoundingClientRect();
    const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
    const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    if (w > 2 && h > 2 && !leaves[i].contains(leaves[j]) && !leaves[j].contains(leaves[i]))
      out.overlapping.push(name(leaves[i]) + ' / ' + name(leaves[j]));
  }
  return out;
}"""


def layout_problems(page: Any, root: str, controls: str = _CONTROLS) -> dict[str, list[str]]:
    """Controls under ``root`` whose text is cut (``scrollWidth > clientWidth``) or that overlap.

    Inside tiles drawn from one HTML value (class ``wb-html-board``: captions, group heads, the
    labelers' card) every element holding text counts as a control, and text cut by an
    ancestor that hides its overflow counts as clipped too.

    Returns ``{"clipped": [...], "overlapping": [...]}`` (both empty when the layout is sound);
    ``{"missing": root}`` if no element matches ``root``.
    """
    return page.evaluate(_LAYOUT_JS, [root, controls, _BOARD])


COLOUR_CLASSES = ["red", "green", "blue"]


def colour_workspace(path: Path) -> tuple[Any, Any]:
    """A workspace whose saved catalog holds 9 small images, 3 per class in
    :data:`COLOUR_CLASSES`, each one different; returns ``(workspace, catalog)``."""
    import numpy as np
    from PIL import Image

    from workbench import Catalog, Workspace

    rng = np.random.default_rng(0)
    root = path / "images" / "colours"
    for k, name in enumerate(COLOUR_CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            a = rng.integers(0, 60, (24, 24, 3), dtype=np.uint8)
            a[..., k] += np.uint8(120 + 40 * i)
            Image.fromarray(a).save(root / name / f"{name}_{i}.png")
    ws = Workspace(path)
    catalog = Catalog.from_folder(root, progress=False)
    ws.save_catalog(catalog)
    return ws, catalog


def write_notebook(target: Path, cells: list[str]) -> Path:
    """Write a notebook of code ``cells`` (python3 kernel) to ``target``; returns ``target``."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, target)
    return target


def type_into(
    page: Any, field: str, text: str, *, over: str | None = None, replace: bool = False
) -> None:
    """Type ``text`` into the text field ``field`` as a user does: pointer over the view ``over``
    (the element whose key listener must not take the keys), click into the field, type.
    ``replace=True`` selects what the field holds first (Ctrl+A), so the text replaces it."""
    if over is not None:
        page.locator(over).first.hover()
    loc = page.locator(field).first
    loc.click()
    if replace:
        page.keyboard.press("Control+a")
    page.keyboard.type(text, delay=10)


def report_failure(page: Any, tmp_path: Path, name: str) -> None:
    """On a failing UI test: print the notebook's error outputs and the browser console errors,
    and save a screenshot ``name`` under ``tmp_path``."""
    print("error/stderr outputs:\n" + "\n\n".join(error_outputs(page, include_stderr=True)))
    print(f"console errors: {getattr(page, 'wb_console_errors', [])}")
    print_widget_trace(page)
    screenshot(page, tmp_path, name)


def print_widget_trace(page: Any, last: int = 5000) -> None:
    """Print the last ``last`` widget messages between page and kernel (see the ``page``
    fixture)."""
    trace = getattr(page, "wb_widget_trace", [])
    print(f"widget messages ({len(trace)}, last {last}):\n" + "\n".join(trace[-last:]))


@dataclass(frozen=True)
class UiHelpers:
    """The module's helper functions, handed to tests by the :func:`ui` fixture.

    Tests use the fixture instead of ``from conftest import ...``, which depends on the
    import mode and on which ``conftest`` module was imported last.
    """

    open_notebook = staticmethod(open_notebook)
    kernel_state = staticmethod(kernel_state)
    run_all = staticmethod(run_all)
    error_outputs = staticmethod(error_outputs)
    screenshot = staticmethod(screenshot)
    layout_problems = staticmethod(layout_problems)
    write_notebook = staticmethod(write_notebook)
    colour_workspace = staticmethod(colour_workspace)
    type_into = staticmethod(type_into)
    report_failure = staticmethod(report_failure)
    print_widget_trace = staticmethod(print_widget_trace)


@pytest.fixture(scope="session")
def ui() -> UiHelpers:
    """Return the UI helpers (``open_notebook``, ``run_all``, ``error_outputs``, ...).

    Returns
    -------
    UiHelpers
        Namespace of the helper functions of this module.
    """
    return UiHelpers()
