"""A Lightning logger that posts scalars, hyper-parameters and images to a visdom server.

visdom has no Lightning logger upstream; the pix2pix family used it for live curves. One window per metric
(a line appended at each step), one per image key, one text window for the hyper-parameters.

The logger speaks visdom's HTTP/JSON protocol itself (`requests` only) instead of importing the `visdom`
package: every visdom release that supports Python 3.10 / 3.11 is an sdist whose setup.py imports
pkg_resources, which current setuptools no longer ship, so `pip install visdom` fails in a fresh venv. The
server runs from its own venv (see README); the protocol it accepts is the one visdom's Python client sends
(POST a JSON body to /env/<env>, /win_exists, /events, /update, /win_data, /save).

An unreachable server, or something on the port that is not visdom, is a one-line UserError at start-up. A
server that stops answering during training costs one warning and the rest of the live curves, not the run.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlparse, urlunparse

import cv2
import numpy as np
import requests
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from src.utils.errors import UserError

log = logging.getLogger(__name__)

SERVER_HINT = "start one as the README's 'Live curves in visdom' says, or choose another logger"


def _server_root(server: str, port: int, base_url: str) -> str:
    """'localhost' / 'http://host' / 'http://host/' + port + '/base' -> 'http://host:port/base' (as visdom does)."""
    parsed = urlparse(server if "://" in server else f"http://{server}")
    if not parsed.hostname:
        raise UserError(f"logger visdom: server must be a host name or URL, got {server!r}")
    base = base_url.strip("/")
    root = urlunparse((parsed.scheme, f"{parsed.hostname}:{port}", "", "", "", ""))
    return f"{root}/{base}" if base else root


class VisdomUnreachableError(Exception):
    """The server did not answer: connection refused, reset or timed out."""


class VisdomClient:
    """The part of visdom's client protocol a training logger needs, one JSON POST per call.

    Each method posts the same body visdom's own Python client posts for the matching call, so the web page
    shows the windows exactly as it shows visdom-client plots.
    """

    def __init__(self, root_url: str, env: str, timeout_seconds: float) -> None:
        self.root_url, self.env, self.timeout = root_url, env, timeout_seconds
        self.session = requests.Session()
        self._plotted: set[str] = set()

    def post(self, endpoint: str, payload: Mapping[str, Any]) -> str:
        """POST the JSON body to <root>/<endpoint>; the answer text. No answer -> VisdomUnreachableError."""
        url = f"{self.root_url}/{endpoint}"
        try:
            response = self.session.post(url, data=json.dumps(payload), timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as err:
            raise VisdomUnreachableError(f"{url}: {type(err).__name__}") from err
        if response.status_code != 200:
            raise RuntimeError(f"visdom server answered HTTP {response.status_code} to {url}: {response.text[:200]}")
        return response.text

    def win_exists(self, win: str) -> bool:
        answer = self.post("win_exists", {"win": win, "eid": self.env})
        if answer not in ("true", "false"):
            raise RuntimeError(f"visdom server answered {answer[:80]!r} to win_exists (expected 'true' or 'false')")
        return answer == "true"

    def create_env(self) -> None:
        self.post(f"env/{quote(self.env, safe='')}", {"eid": self.env})

    def window(self, win: str) -> dict[str, Any]:
        """The server's stored window (type, title, content ...), as visdom's get_window_data returns it."""
        return json.loads(self.post("win_data", {"win": win, "eid": self.env}))

    def append_point(self, win: str, x: float, y: float, xlabel: str = "step") -> None:
        """Append (x, y) to the line plot `win`; the server creates the window on the first point."""
        trace = {
            "x": [x],
            "y": [y],
            "name": "1",
            "type": "scatter",
            "mode": "lines",
            "marker": {"size": 10, "symbol": "dot", "line": {"color": "#000000", "width": 0.5}},
        }
        opts = {"title": win, "xlabel": xlabel, "markers": False, "fillarea": False, "mode": "lines"}
        first = win not in self._plotted
        layout = (
            {
                "showlegend": False,
                "title": win,
                "margin": {"l": 60, "r": 60, "t": 60, "b": 60},
                "xaxis": {"title": xlabel},
                "yaxis": {},
            }
            if first
            else {}
        )
        body = {"data": [trace], "win": win, "eid": self.env, "layout": layout, "opts": opts}
        self.post("update", {**body, "name": None, "append": True})
        self._plotted.add(win)

    def text(self, win: str, content_html: str, title: str) -> None:
        data = [{"content": content_html, "type": "text"}]
        self.post("events", {"data": data, "win": win, "eid": self.env, "opts": {"title": title}})

    def image(self, win: str, rgb: np.ndarray, title: str, caption: str) -> None:
        """Show an HxWx3 RGB or HxW grey uint8 image in `win` (replacing what was there), sent as a PNG data URL."""
        ok, png = cv2.imencode(".png", rgb[..., ::-1] if rgb.ndim == 3 else rgb)
        if not ok:
            raise RuntimeError(f"visdom image {win!r}: PNG encoding failed for an array of shape {rgb.shape}")
        src = "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")
        opts = {"title": title, "caption": caption, "width": int(rgb.shape[1]), "height": int(rgb.shape[0])}
        data = [{"content": {"src": src, "caption": caption}, "type": "image"}]
        self.post("events", {"data": data, "win": win, "eid": self.env, "opts": opts})

    def save(self) -> None:
        """Ask the server to write the env to its env_path (visdom keeps it across server restarts)."""
        self.post("save", {"data": [self.env], "eid": self.env})


def _as_uint8_image(key: str, image: Any) -> np.ndarray:
    """uint8 HxW or HxWx3 (floats in [0, 1] are scaled); anything else is a caller bug named by its key."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"visdom image {key!r}: expected HxW or HxWx3, got shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating):
        array = np.clip(np.nan_to_num(array) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ValueError(f"visdom image {key!r}: expected uint8 or float in [0, 1], got {array.dtype}")
    return np.ascontiguousarray(array)


class VisdomLogger(Logger):
    """Live curves, sample grids and the run config in a visdom server's env `env`."""

    def __init__(
        self,
        server: str = "http://localhost",
        port: int = 8097,
        env: str = "facesynth",
        name: str = "facesynth",
        version: str | int | None = None,
        timeout_seconds: float = 5.0,
        base_url: str = "",
    ) -> None:
        super().__init__()
        self.env = env
        self._name, self._version = name, version
        self._where = _server_root(server, int(port), base_url)
        self._client: VisdomClient | None = VisdomClient(self._where, env, float(timeout_seconds))
        self._connect(self._client)

    def _connect(self, client: VisdomClient) -> None:
        """Fail at start-up, in one line, when nothing (or not visdom) listens at the configured address."""
        try:
            client.win_exists("")
            client.create_env()
        except VisdomUnreachableError as err:
            raise UserError(
                f"logger visdom: no server at {self._where} ({err.__cause__.__class__.__name__}); {SERVER_HINT}"
            ) from None
        except RuntimeError as err:
            raise UserError(f"logger visdom: {self._where} is not a visdom server ({err}); {SERVER_HINT}") from None

    def _send(self, what: str, call: Callable[[VisdomClient], None]) -> None:
        """Run one client call; after the server went away, warn once and drop the remaining visdom output."""
        if self._client is None:
            return
        try:
            call(self._client)
        except VisdomUnreachableError as err:
            log.warning(
                f"visdom server stopped answering ({err}) while sending {what}; "
                "visdom logging is off for the rest of this run, training goes on"
            )
            self._client = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str | int:
        return self._version if self._version is not None else 0

    @property
    def experiment(self) -> VisdomClient | None:
        """The protocol client (window, win_exists, append_point, text, image, save); None once the server is gone."""
        return self._client

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any] | Any, *args: Any, **kwargs: Any) -> None:
        params = params if isinstance(params, Mapping) else vars(params)
        text = html.escape(json.dumps(params, indent=2, default=str))
        self._send("hyper-parameters", lambda c: c.text("hparams", f"<pre>{text}</pre>", "hyper-parameters"))

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        x = 0 if step is None else int(step)
        for key, value in metrics.items():
            y = float(value.item() if hasattr(value, "item") else value)
            if math.isfinite(y):  # a NaN / inf point would break the plot's autoscale
                self._send(key, lambda c, k=key, v=y: c.append_point(k, x, v))

    @rank_zero_only
    def log_image(self, key: str, image: np.ndarray, step: int | None = None) -> None:
        """HxWx3 uint8 RGB (or HxW grey) image into the window `key`, replaced at each call."""
        array = _as_uint8_image(key, image)
        caption = key if step is None else f"{key} (step {step})"
        self._send(key, lambda c: c.image(key, array, key, caption))

    @rank_zero_only
    def save(self) -> None:
        self._send("save", lambda c: c.save())

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()
