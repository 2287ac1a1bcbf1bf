"""The visdom Lightning logger: start-up and mid-run failures (fast), and a real visdom server (slow).

The real-server tests build the server's venv with the README's commands (tests/loggers/visdom_server.py,
~20 s with pip's cache) and skip, saying why, only when that venv cannot be made. They check our protocol
client against visdom's own Python client (same calls -> same windows on the server) and a short training run.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest

from src.utils.errors import UserError
from src.utils.visdom_logger import VisdomLogger, _server_root
from tests.framework.framework_fixtures import REPO, tiny_train_overrides, write_synthetic_rgbd
from tests.loggers.visdom_server import VisdomVenvUnavailableError, free_port, make_visdom_venv, running_server


class _Answer(BaseHTTPRequestHandler):
    """A stdlib HTTP server's handler: a fixed answer per path (what a visdom server or another server says)."""

    answers: ClassVar[dict[str, tuple[int, str]]] = {}  # per-server copies: see the fixture
    posted: ClassVar[list[tuple[str, dict]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.posted.append((self.path, json.loads(body or b"{}")))
        status, text = self.answers.get(self.path, (404, "<html>404: Not Found</html>"))
        self.send_response(status)
        self.end_headers()
        self.wfile.write(text.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[ThreadingHTTPServer, type[_Answer]]]:
    handler = type("Handler", (_Answer,), {"answers": {}, "posted": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def test_unreachable_server_is_one_user_error() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(UserError) as info:
        VisdomLogger(server="http://127.0.0.1", port=port, timeout_seconds=1)
    message = str(info.value)
    assert f"no server at http://127.0.0.1:{port} (ConnectionError)" in message and "\n" not in message


def test_a_server_that_is_not_visdom_is_one_user_error(http_server) -> None:
    server, _ = http_server  # answers 404 to everything, like any web server that is not visdom
    port = server.server_address[1]
    with pytest.raises(UserError) as info:
        VisdomLogger(server="127.0.0.1", port=port, timeout_seconds=2)
    message = str(info.value)
    assert f"http://127.0.0.1:{port} is not a visdom server" in message and "HTTP 404" in message
    assert "\n" not in message


def test_a_server_lost_mid_run_costs_one_warning_not_the_run(http_server, caplog) -> None:
    server, handler = http_server
    handler.answers.update(
        {"/win_exists": (200, "false"), "/env/e": (200, ""), "/update": (200, "train/loss"), "/save": (200, "[]")}
    )
    logger = VisdomLogger(server="127.0.0.1", port=server.server_address[1], env="e", timeout_seconds=2)
    logger.log_metrics({"train/loss": 1.5}, step=3)
    assert [path for path, _ in handler.posted] == ["/win_exists", "/env/e", "/update"]
    assert handler.posted[-1][1]["data"][0]["x"] == [3] and handler.posted[-1][1]["append"] is True

    server.shutdown()
    server.server_close()
    with caplog.at_level(logging.WARNING, logger="src.utils.visdom_logger"):
        logger.log_metrics({"train/loss": 1.0}, step=4)
        logger.log_metrics({"train/loss": 0.5}, step=5)
        logger.log_image("samples", np.zeros((4, 4, 3), np.uint8), step=5)
        logger.finalize("success")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "visdom logging is off for the rest of this run" in warnings[0]
    assert logger.experiment is None


@pytest.mark.parametrize(
    ("server", "port", "base_url", "root"),
    [
        ("http://localhost", 8097, "", "http://localhost:8097"),
        ("localhost", 8097, "", "http://localhost:8097"),
        ("https://viz.example.org/", 443, "/visdom/", "https://viz.example.org:443/visdom"),
        ("http://10.0.0.2:9999", 8097, "", "http://10.0.0.2:8097"),  # the port key wins, as in visdom's client
    ],
)
def test_server_address_is_normalised_like_visdoms_client(server: str, port: int, base_url: str, root: str) -> None:
    assert _server_root(server, port, base_url) == root


def test_bad_image_names_its_key(http_server) -> None:
    server, handler = http_server
    handler.answers.update({"/win_exists": (200, "false"), "/env/facesynth": (200, "")})
    logger = VisdomLogger(server="127.0.0.1", port=server.server_address[1], timeout_seconds=2)
    with pytest.raises(ValueError, match="visdom image 'samples': expected HxW or HxWx3, got shape"):
        logger.log_image("samples", np.zeros((2, 4, 4, 3), np.uint8))


# ---------------------------------------------------------------------------------------------- real server


@pytest.fixture(scope="session")
def visdom_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The visdom venv's python, made once per session with the README's install line."""
    try:
        return make_visdom_venv(tmp_path_factory.getbasetemp() / "visdom_venv")
    except VisdomVenvUnavailableError as err:
        pytest.skip(f"no visdom venv, so no real visdom server: {err}")


@pytest.fixture
def visdom_port(visdom_python: Path, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    with running_server(visdom_python, port, tmp_path / "visdom_env"):
        yield port


_REFERENCE_CLIENT = """
import json, sys
import numpy as np, visdom
port, env, points, image_file, text = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], sys.argv[5]
vis = visdom.Visdom(server="http://127.0.0.1", port=port, env=env, raise_exceptions=True, use_incoming_socket=False)
for x, y in points:
    vis.line(X=np.array([x]), Y=np.array([y]), win="train/G/l1", update="append",
             opts={"title": "train/G/l1", "xlabel": "step"})
image = np.load(image_file)
vis.image(image.transpose(2, 0, 1), win="samples", opts={"title": "samples", "caption": "samples (step 5)"})
vis.text(text, win="hparams", opts={"title": "hyper-parameters"})
"""


def _png_pixels(data_url: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert data_url.startswith(prefix)
    bgr = cv2.imdecode(np.frombuffer(base64.b64decode(data_url[len(prefix) :]), np.uint8), cv2.IMREAD_UNCHANGED)
    return bgr[..., ::-1]


@pytest.mark.slow
def test_windows_match_visdoms_own_client(visdom_python: Path, visdom_port: int, tmp_path: Path) -> None:
    points = [(1, 0.5), (2, 0.25), (5, 0.125)]
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    params = {"lr": 2e-4, "generator": "<unet_512>"}

    logger = VisdomLogger(server="http://127.0.0.1", port=visdom_port, env="ours", name="t", timeout_seconds=10)
    for x, y in points:
        logger.log_metrics({"train/G/l1": y, "val/psnr": float("nan")}, step=x)
    logger.log_image("samples", image, step=5)
    logger.log_hyperparams(params)
    client = logger.experiment
    ours = {win: client.window(win) for win in ("train/G/l1", "samples", "hparams")}
    assert not client.win_exists("val/psnr")  # non-finite values are not plotted

    np.save(tmp_path / "image.npy", image)
    script = [str(visdom_python), "-c", _REFERENCE_CLIENT, str(visdom_port), "reference", json.dumps(points)]
    subprocess.run([*script, str(tmp_path / "image.npy"), ours["hparams"]["content"]], check=True, timeout=60)
    client.env = "reference"
    reference = {win: client.window(win) for win in ours}

    line, ref_line = ours["train/G/l1"], reference["train/G/l1"]
    assert line["type"] == ref_line["type"] == "plot" and line["title"] == ref_line["title"] == "train/G/l1"
    assert len(line["content"]["data"]) == len(ref_line["content"]["data"]) == 1
    for field in ("x", "y", "type", "mode", "name"):
        assert line["content"]["data"][0][field] == ref_line["content"]["data"][0][field], field
    assert line["content"]["data"][0]["x"] == [1, 2, 5] and line["content"]["data"][0]["y"] == [0.5, 0.25, 0.125]
    assert line["content"]["layout"]["title"] == ref_line["content"]["layout"]["title"]
    assert line["content"]["layout"]["xaxis"]["title"] == ref_line["content"]["layout"]["xaxis"]["title"] == "step"

    picture, ref_picture = ours["samples"], reference["samples"]
    assert picture["type"] == ref_picture["type"] == "image"
    assert (picture["width"], picture["height"]) == (ref_picture["width"], ref_picture["height"]) == (10, 6)
    assert picture["content"]["caption"] == ref_picture["content"]["caption"] == "samples (step 5)"
    assert np.array_equal(_png_pixels(picture["content"]["src"]), image)
    assert np.array_equal(_png_pixels(ref_picture["content"]["src"]), image)

    text = ours["hparams"]["content"]
    assert text == reference["hparams"]["content"] and ours["hparams"]["type"] == "text"
    assert json.loads(html.unescape(text.removeprefix("<pre>").removesuffix("</pre>"))) == params


@pytest.mark.slow
def test_a_training_run_draws_its_curves_and_samples(visdom_port: int, tmp_path: Path) -> None:
    dataset = write_synthetic_rgbd(tmp_path / "processed")
    out = tmp_path / "run"
    overrides = tiny_train_overrides(dataset, out, "test=false", "callbacks.sample_grid.every_n_epochs=1")
    overrides = [o for o in overrides if o != "logger=csv"]
    overrides += ["logger=[csv,visdom]", "logger.visdom.server=http://127.0.0.1", f"logger.visdom.port={visdom_port}"]
    overrides += ["trainer.log_every_n_steps=1", "task_name=visdom_test"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *overrides], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]

    client = VisdomLogger(server="127.0.0.1", port=visdom_port, env="visdom_test", timeout_seconds=10).experiment
    windows = json.loads(client.post("win_data", {"win": None, "eid": "visdom_test"}))
    plotted = {win: w["content"]["data"][0] for win, w in windows.items() if w["type"] == "plot"}

    # the CSV logger of the same run is the reference: every finite value it wrote is a point on the curve
    csv_points: dict[str, list[tuple[int, float]]] = {}
    with open(out / "csv" / "version_0" / "metrics.csv") as rows:
        for row in csv.DictReader(rows):
            for key, value in row.items():
                if key != "step" and value not in ("", "nan"):
                    csv_points.setdefault(key, []).append((int(row["step"]), float(value)))
    train_keys = [key for key in csv_points if key.startswith("train/")]
    assert train_keys and any(key.startswith("val/") for key in csv_points), sorted(csv_points)
    assert len(csv_points[train_keys[0]]) >= 4  # 2 epochs x 2 batches, logged every step
    for key, points in csv_points.items():
        assert key in plotted, f"{key} is in metrics.csv but has no visdom window"
        assert plotted[key]["x"] == [x for x, _ in points], key
        assert plotted[key]["y"] == pytest.approx([y for _, y in points], rel=1e-6), key

    assert windows["samples"]["type"] == "image"
    assert _png_pixels(windows["samples"]["content"]["src"]).ndim == 3
    hparams = json.loads(html.unescape(windows["hparams"]["content"].removeprefix("<pre>").removesuffix("</pre>")))
    assert hparams["generator"]["ngf"] == 8 and hparams["discriminator"]["ndf"] == 8  # TINY_MODEL
    saved = tmp_path / "visdom_env" / "visdom_test.json"  # finalize asked the server to save the env
    assert saved.is_file() and json.loads(saved.read_text())["jsons"].keys() == windows.keys()
