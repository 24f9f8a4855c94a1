"""Headless Chromium for the tests of the dashboard and the HTML report.

Debian's ``chromium`` package (``.ci/run`` installs it). Without it a test fails with a
clear message instead of skipping: CI must run these tests.

- :func:`dump_dom` and :func:`screenshot`: one-shot runs (``--dump-dom``, ``--screenshot``)
  with a virtual-time budget, so a page's scripts and fetches finish before the dump;
- :class:`Browser`: a live browser driven over the DevTools protocol on a pipe
  (``--remote-debugging-pipe``: fd 3 in, fd 4 out, NUL-terminated JSON), no websocket
  library needed; :meth:`Browser.wait_for` awaits a condition inside the page (a promise
  that resolves on the first DOM change that makes it true), never a sleep.

Each run uses a fresh ``--user-data-dir`` and its own process group, which is killed at
the end, so no Chromium process outlives a test.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-default-apps", "--disable-dev-shm-usage", "--hide-scrollbars",
         "--mute-audio", "--no-default-browser-check"]
#: A guard against a hung browser, not a measurement.
LIMIT = 60.0


def chromium() -> str:
    """The Chromium binary, or a test failure that says how to install it."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("headless Chromium is needed for the dashboard and report tests and was not "
                "found: install Debian's package (apt-get update && apt-get install -y "
                "chromium), as .ci/run does", pytrace=False)


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    """End the browser and every process it started (its own process group)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # helpers left behind after the browser ended


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="jobmock-chromium-") as profile:
        proc = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=LIMIT)
        finally:
            _kill_group(proc)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def dump_dom(url: str, budget_ms: int = 3000) -> str:
    """The DOM of ``url`` after its scripts ran for ``budget_ms`` of virtual time."""
    done = _run([f"--virtual-time-budget={budget_ms}", "--dump-dom", url])
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(url: str, path: Path, size: str = "1280,1800", budget_ms: int = 3000) -> Path:
    """A PNG of ``url`` at ``size`` (``W,H``) after ``budget_ms`` of virtual time."""
    done = _run([f"--virtual-time-budget={budget_ms}", f"--window-size={size}",
                 f"--screenshot={path}", url])
    assert done.returncode == 0 and path.is_file(), done.stderr[-2000:]
    return path


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file, from its header."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


class Browser:
    """A headless Chromium with one page, driven over the DevTools protocol on a pipe."""

    def __init__(self, width: int = 1280, height: int = 1000) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="jobmock-chromium-")
        # The child must find the protocol on fds 3 (commands) and 4 (answers): bash
        # copies the pipe ends there (from fds >= 10, so no copy clobbers another) and execs.
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        a = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
        b = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
        os.close(to_child_r)
        os.close(from_child_w)
        to_child_r, from_child_w = a, b
        self._log = open(Path(self._profile.name) / "chromium.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", f'exec "$@" 3<&{a} 4>&{b}', "bash",
             chromium(), *FLAGS, f"--user-data-dir={self._profile.name}",
             "--remote-debugging-pipe", f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
            pass_fds=(a, b), start_new_session=True)
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next = 0
        self.session: str | None = None
        self.events: list[dict[str, Any]] = []

    # -- the protocol ----------------------------------------------------------------------

    def send(self, method: str, params: dict[str, Any] | None = None, *,
             session: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """Send one command and return its result (a protocol error fails the test)."""
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for reply in self._read(deadline, method):
                if reply.get("id") == self._next:
                    if "error" in reply:
                        raise AssertionError(f"{method}: {reply['error']}")
                    result: dict[str, Any] = reply.get("result", {})
                    return result
                self.events.append(reply)

    def _read(self, deadline: float, what: str) -> list[dict[str, Any]]:
        left = deadline - time.monotonic()
        if left <= 0 or self.proc.poll() is not None:
            err = (Path(self._profile.name) / "chromium.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"no answer from Chromium to {what} ({err})")
        ready, _, _ = select.select([self._from_child], [], [], left)
        if not ready:
            return []
        chunk = os.read(self._from_child, 1 << 20)
        if not chunk:
            raise AssertionError(f"Chromium closed the DevTools pipe while waiting for {what}")
        self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        return [json.loads(m) for m in messages if m]

    def page(self, method: str, params: dict[str, Any] | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        """A command to the page's session."""
        assert self.session is not None, "open a page first"
        return self.send(method, params, session=self.session, timeout=timeout)

    # -- what a test does ------------------------------------------------------------------

    def open(self, url: str) -> None:
        """Open ``url`` in a new tab and attach to it."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        self.page("Page.enable")
        self.page("Runtime.enable")
        self.page("Page.navigate", {"url": url})

    def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.page("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True,
            "timeout": int(timeout * 1000)}, timeout=timeout + 5)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait_for(self, condition: str, timeout: float = 20.0) -> Any:
        """Wait until the JavaScript expression ``condition`` is truthy in the page: a promise
        that checks it on every DOM change (a MutationObserver), failing after ``timeout``."""
        script = f"""new Promise((resolve, reject) => {{
            const test = () => {{ try {{ return ({condition}); }} catch (e) {{ return false; }} }};
            const now = test();
            if (now) {{ resolve(now); return; }}
            const seen = new MutationObserver(() => {{
                const v = test(); if (v) {{ seen.disconnect(); clearTimeout(timer); resolve(v); }}
            }});
            const timer = setTimeout(() => {{ seen.disconnect(); reject(new Error(
                "timed out waiting for: " + {json.dumps(condition)})); }}, {int(timeout * 1000)});
            seen.observe(document, {{subtree: true, childList: true, characterData: true,
                                     attributes: true}});
        }})"""
        return self.evaluate(script, timeout=timeout + 5)

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page."""
        metrics = self.page("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = self.page("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.proc.poll() is None:
                self.send("Browser.close", timeout=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        _kill_group(self.proc)
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._log.close()
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
