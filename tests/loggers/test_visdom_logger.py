"""The visdom Lightning logger against a real visdom server on loopback.

`python -m visdom.server` first tries to download its web assets (no internet here: it stalls on timeouts), so
the test starts the server through `visdom.server.run_server.main`, the same server without the download step.
Its environment files go to a temporary folder (-env_path), not to ~/.visdom.
"""

import json
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from src.utils.errors import UserError
from src.utils.visdom_logger import VisdomLogger

START_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_listening(process: subprocess.Popen, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"visdom server exited with code {process.returncode}: {process.stderr.read()[-800:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"visdom server did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


@pytest.fixture
def visdom_server(tmp_path):
    port = _free_port()
    command = [
        sys.executable,
        "-c",
        "from visdom.server.run_server import main; main()",
        "-port",
        str(port),
        "--hostname",
        "127.0.0.1",
        "-env_path",
        str(tmp_path / "visdom_env"),
        "-logging_level",
        "WARNING",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_until_listening(process, port, START_TIMEOUT_S)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _window(client, win: str, env: str) -> dict:
    data = client.get_window_data(win, env=env)
    assert data, f"window {win!r} not found on the server"
    return json.loads(data)


def test_scalars_and_images_arrive_on_the_server(visdom_server):
    env = "facesynth_test"
    logger = VisdomLogger(server="http://127.0.0.1", port=visdom_server, env=env, name="t", timeout_seconds=10)
    logger.log_metrics({"train/G/l1": 0.5}, step=1)
    logger.log_metrics({"train/G/l1": 0.25, "val/psnr": float("nan")}, step=2)
    image = np.zeros((8, 12, 3), np.uint8)
    image[..., 0] = 255
    logger.log_image("samples", image, step=2)
    logger.log_hyperparams({"lr": 2e-4, "generator": "unet_512"})

    client = logger.experiment
    line = _window(client, "train/G/l1", env)
    trace = line["content"]["data"][0]
    assert trace["x"] == [1, 2] and trace["y"] == [0.5, 0.25]
    assert not client.win_exists("val/psnr", env=env)  # non-finite values are not plotted

    picture = _window(client, "samples", env)
    assert picture["type"] == "image"
    assert picture["content"]["src"].startswith("data:image/png;base64,")
    assert "unet_512" in _window(client, "hparams", env)["content"]
    logger.finalize("success")


def test_unreachable_server_is_one_user_error():
    port = _free_port()  # nothing listens there
    with pytest.raises(UserError, match=f"no server at http://127.0.0.1:{port}"):
        VisdomLogger(server="http://127.0.0.1", port=port, timeout_seconds=1)
