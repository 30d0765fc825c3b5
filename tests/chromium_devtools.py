"""A small Chrome DevTools Protocol client for the browser tests.

It launches Debian's headless Chromium with a throwaway profile, connects to one page
target over the DevTools websocket (``websocket-client``) and sends commands
synchronously. Events that arrive while a command waits for its reply are kept in
``DevToolsPage.events``; ``Fetch.requestPaused`` events go to a request handler at once,
because the page stalls until each paused request is resolved.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websocket

INSTALL_HINT = "install it with `apt-get install -y chromium` (.ci/run does this before `make test`)"

# Flags for a root user in a container with no display, GPU or network use of its own.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,900",
]


class DevToolsError(RuntimeError):
    """A DevTools command returned an error, or waiting for the browser timed out."""


def find_chromium() -> str | None:
    """Return the path of the Chromium executable on PATH, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class DevToolsPage:
    """One page target, driven through its DevTools websocket."""

    def __init__(self, websocket_url: str, timeout: float = 60.0):
        # Without suppress_origin the client sends an Origin header, which Chromium rejects.
        self._socket = websocket.create_connection(websocket_url, timeout=timeout, suppress_origin=True)
        self._next_id = 0
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self.request_handler: Callable[[DevToolsPage, dict[str, Any]], None] | None = None

    def close(self) -> None:
        self._socket.close()

    def send(self, method: str, **params: Any) -> int:
        """Send a command without waiting for its reply; return its id."""
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        return self._next_id

    def call(self, method: str, timeout: float | None = None, **params: Any) -> dict[str, Any]:
        """Send a command and return its result, dispatching the events that arrive meanwhile."""
        command_id = self.send(method, **params)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            message = self._receive(deadline, f"the reply to {method}")
            if message.get("id") != command_id:
                continue
            if "error" in message:
                raise DevToolsError(f"{method}({params}) failed: {message['error']}")
            return message.get("result", {})

    def wait_for_event(self, method: str, timeout: float | None = None) -> dict[str, Any]:
        """Return the parameters of the next ``method`` event, taking already received ones first."""
        for index, event in enumerate(self.events):
            if event["method"] == method:
                return self.events.pop(index)["params"]
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            message = self._receive(deadline, f"the event {method}")
            if message.get("method") == method:
                self.events.remove(message)
                return message["params"]

    def drain(self, seconds: float) -> None:
        """Dispatch the events that arrive within ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self._receive(deadline, "events")
            except DevToolsError:
                return

    def evaluate(self, expression: str, timeout: float | None = None) -> Any:
        """Evaluate JavaScript in the page, awaiting a returned promise, and return the value as JSON data."""
        result = self.call("Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            description = details.get("exception", {}).get("description", details.get("text"))
            raise DevToolsError(f"JavaScript failed: {description}\nexpression: {expression[:300]}")
        return result["result"].get("value")

    def wait_until(self, expression: str, what: str, timeout: float | None = None, interval: float = 0.2) -> Any:
        """Evaluate ``expression`` until it returns a truthy value, and return that value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise DevToolsError(f"timed out after {timeout or self.timeout} s waiting for {what}")
            self.drain(interval)

    def navigate(self, url: str, timeout: float | None = None) -> None:
        """Open ``url`` and wait for its load event."""
        self.events = [event for event in self.events if event["method"] != "Page.loadEventFired"]
        result = self.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise DevToolsError(f"navigation to {url} failed: {result['errorText']}")
        self.wait_for_event("Page.loadEventFired", timeout)

    def screenshot(self, path: Path, max_height: int = 16000) -> None:
        """Save a PNG of the whole page (cut at ``max_height`` CSS pixels)."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height), "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def _receive(self, deadline: float, what: str) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DevToolsError(f"timed out waiting for {what}")
        self._socket.settimeout(remaining)
        try:
            message = json.loads(self._socket.recv())
        except websocket.WebSocketTimeoutException as error:
            raise DevToolsError(f"timed out waiting for {what}") from error
        if message.get("method") == "Fetch.requestPaused" and self.request_handler is not None:
            self.request_handler(self, message["params"])
        elif "method" in message:
            self.events.append(message)
        return message


class Chromium:
    """Headless Chromium with a new profile directory; use as a context manager."""

    def __init__(self, executable: str, log_path: Path, startup_timeout: float = 60.0):
        self.executable = executable
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self._profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
        self._process: subprocess.Popen | None = None
        self.port: int | None = None

    def __enter__(self) -> Chromium:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("w")
        command = [self.executable, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-port=0",
                   "about:blank"]
        self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        # With port 0 Chromium picks a free port and writes it to DevToolsActivePort in the profile.
        port_file = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.startup_timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if self._process.poll() is not None:
                raise DevToolsError(f"Chromium exited with code {self._process.returncode} before DevTools "
                                    f"started; log:\n{self.log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise DevToolsError(f"Chromium did not open DevTools within {self.startup_timeout} s; "
                                    f"log:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        self.port = int(port_file.read_text().splitlines()[0])
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        shutil.rmtree(self._profile, ignore_errors=True)

    def open_page(self) -> DevToolsPage:
        """Connect to the first page target (the about:blank tab Chromium starts with)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=30) as response:
            targets = json.load(response)
        page = next(target for target in targets if target["type"] == "page")
        return DevToolsPage(page["webSocketDebuggerUrl"])
