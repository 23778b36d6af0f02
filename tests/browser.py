"""Open a page in headless Chromium, as a person would, and record what happened.

Chromium is driven through the Chrome DevTools protocol over ``--remote-debugging-pipe`` (JSON
messages separated by NUL bytes on file descriptors 3 and 4), so no driver package, websocket or
port is involved. The page is loaded from a file:// URL; every network request it makes, every console
error and uncaught exception, the rendered size of every figure and a full-page PNG come back.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]
FIGURE_SIZES = """JSON.stringify(Array.from(document.querySelectorAll('figure svg, figure img')).map(e => {
  const r = e.getBoundingClientRect(); return {w: r.width, h: r.height};
}))"""


def chromium_path() -> str | None:
    """Debian's chromium (or another Chromium on PATH), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageVisit:
    """What loading one page did."""

    requests: list[str] = field(default_factory=list)  # every URL the page requested, itself included
    errors: list[str] = field(default_factory=list)  # console errors, uncaught exceptions, error log entries
    figures: list[dict[str, float]] = field(default_factory=list)  # rendered width/height of each figure


class _Pipe:
    """One Chromium process and its DevTools pipe."""

    def __init__(self, exe: str, profile: Path, timeout: float):
        to_chrome_r, self._to_chrome = _high(*os.pipe())
        self._from_chrome, from_chrome_w = _high(*os.pipe())

        def fds() -> (
            None
        ):  # in the child: the protocol reads fd 3 and writes fd 4 (dup2 makes them inheritable)
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(  # close_fds=False: fds 3 and 4 made in the child must survive to exec
            [exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=fds,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.timeout = timeout
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._read())

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def _high(*fds: int) -> tuple[int, ...]:
    """The same pipe ends moved above fd 9 (close-on-exec), so the child's dup2 to 3 and 4 clobbers none."""
    moved = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds)
    for fd in fds:
        os.close(fd)
    return moved


def visit(
    page: Path, screenshot: Path, *, profile: Path, width: int = 1280, timeout: float = 60.0
) -> PageVisit:
    """Load ``page`` in a fresh headless Chromium profile; write a full-page PNG to ``screenshot``."""
    import base64

    exe = chromium_path()
    if exe is None:
        raise RuntimeError("no chromium on PATH")
    chrome = _Pipe(exe, profile, timeout)
    try:
        target = chrome.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = chrome.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            chrome.send(f"{domain}.enable", session=session)
        chrome.send("Emulation.setDeviceMetricsOverride", _metrics(width, 900), session=session)
        chrome.events.clear()
        chrome.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        chrome.wait_for("Page.loadEventFired")
        sizes = chrome.send(
            "Runtime.evaluate", {"expression": FIGURE_SIZES, "returnByValue": True}, session=session
        )
        height = chrome.send("Page.getLayoutMetrics", session=session)["cssContentSize"]["height"]
        chrome.send("Emulation.setDeviceMetricsOverride", _metrics(width, int(height)), session=session)
        shot = chrome.send("Page.captureScreenshot", {"format": "png"}, session=session)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        return _visit(chrome.events, json.loads(sizes["result"]["value"]))
    finally:
        chrome.close()


def _metrics(width: int, height: int) -> dict[str, Any]:
    return {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}


def _visit(events: list[dict[str, Any]], figures: list[dict[str, float]]) -> PageVisit:
    out = PageVisit(figures=figures)
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Network.requestWillBeSent":
            out.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            out.errors.append(str(params["exceptionDetails"].get("text")))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            out.errors.append(f"{params['entry'].get('source')}: {params['entry'].get('text')}")
    return out
