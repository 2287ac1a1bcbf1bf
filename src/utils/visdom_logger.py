"""A Lightning logger that posts scalars, hyper-parameters and images to a visdom server.

visdom has no Lightning logger upstream; the pix2pix family used it for live curves. One window per metric
(a line appended at each step), one per image key. An unreachable server is a one-line UserError at start-up,
not a stream of connection warnings during training.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from src.utils.errors import UserError


class VisdomLogger(Logger):
    def __init__(
        self,
        server: str = "http://localhost",
        port: int = 8097,
        env: str = "facesynth",
        name: str = "facesynth",
        version: str | int | None = None,
        timeout_seconds: float = 5.0,
    ) -> None:
        super().__init__()
        self.server, self.port, self.env = server, int(port), env
        self._name, self._version = name, version
        self._timeout = timeout_seconds
        self._client: Any = None
        self._connect()

    def _connect(self) -> None:
        try:
            import visdom
        except ImportError as err:
            raise UserError(f"logger visdom: the visdom package is not installed ({err})") from None
        where = f"{self.server}:{self.port}"
        try:
            client = visdom.Visdom(
                server=self.server, port=self.port, env=self.env, raise_exceptions=True, use_incoming_socket=False
            )
            reachable = client.check_connection(timeout_seconds=self._timeout)
        except Exception as err:  # requests' ConnectionError and friends
            raise UserError(
                f"logger visdom: no server at {where} ({type(err).__name__}); start one with "
                f"`python -m visdom.server -port {self.port}` or choose another logger"
            ) from None
        if not reachable:
            raise UserError(
                f"logger visdom: no server at {where}; start one with `python -m visdom.server "
                f"-port {self.port}` or choose another logger"
            )
        self._client = client

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str | int:
        return self._version if self._version is not None else 0

    @property
    def experiment(self) -> Any:
        """The visdom.Visdom client."""
        return self._client

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any] | Any, *args: Any, **kwargs: Any) -> None:
        params = params if isinstance(params, Mapping) else vars(params)
        text = json.dumps(params, indent=2, default=str)
        self._client.text(f"<pre>{text}</pre>", win="hparams", env=self.env, opts={"title": "hyper-parameters"})

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        x = 0 if step is None else int(step)
        for key, value in metrics.items():
            y = float(value.item() if hasattr(value, "item") else value)
            if not np.isfinite(y):
                continue
            self._client.line(
                X=np.array([x]),
                Y=np.array([y]),
                win=key,
                env=self.env,
                update="append",
                opts={"title": key, "xlabel": "step"},
            )

    @rank_zero_only
    def log_image(self, key: str, image: np.ndarray, step: int | None = None) -> None:
        """HxWx3 uint8 RGB (or HxW grey) image into the window `key`, replaced at each call."""
        array = np.asarray(image)
        chw = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
        caption = key if step is None else f"{key} (step {step})"
        self._client.image(chw, win=key, env=self.env, opts={"title": key, "caption": caption})

    @rank_zero_only
    def save(self) -> None:
        self._client.save([self.env])

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._client is not None:
            self.save()
