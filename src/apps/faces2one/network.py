"""The position-map network the app runs: a PRNet checkpoint of this framework, its ONNX / TorchScript export, or
the original's released TF checkpoint (with its Data/uv-data folder as uv_data).

Whatever the format, `PositionMapNetwork(crops)` takes (B, S, S, 3) uint8 RGB crops and returns (B, S, S, 3)
float32 position maps in crop pixels (x, y, z), together with the UV face mask and keypoint texels the network was
trained with (from the checkpoint's fitted statistics, or the export's uv-data folder beside it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from src.models.components.prnet_uv import UVData, build_uv_data, read_uv_data
from src.utils.errors import CheckpointError, UserError


class PositionMapNetwork:
    """See the module docstring. threads: intra-op threads of torch / onnxruntime."""

    def __init__(self, path: str | os.PathLike, threads: int = 2, uv_data: str | os.PathLike | None = None) -> None:
        path = Path(path)
        tf_checkpoint = Path(f"{path}.index").is_file()
        if not path.exists() and not tf_checkpoint:
            raise UserError(
                f"prnet={path}: not found (a PRNet .ckpt, prnet.onnx / prnet.torchscript.pt, or the original's TF "
                "checkpoint prefix Data/net-data/256_256_resfcn256_weight)"
            )
        self.path = path
        self._session = None
        self._module: torch.nn.Module | None = None
        self.threads = int(threads)
        uv = None
        if tf_checkpoint:  # the original's released weights: resfcn256 at 256 px, base 16
            from src.models.components.prnet_resfcn import MAX_POS_FACTOR, ResFCN256, import_tf_weights, load_tf_arrays
            from src.models.prnet import PositionMapInPixels

            network = ResFCN256(base_channels=16)
            import_tf_weights(network, load_tf_arrays(path))
            self.size = 256
            self._module = PositionMapInPixels(network, MAX_POS_FACTOR * self.size).eval()
        elif path.suffix == ".ckpt":
            from src.utils.checkpoint import load_module

            module, _ = load_module(path, expected_class="src.models.prnet.PRNetModule")
            if not bool(module.statistics_fitted):
                raise CheckpointError(f"prnet={path}: an untrained checkpoint (no fitted UV data)")
            self._module = module.export_model().eval()
            self.size = module.map_size
            mask = module.uv_face_mask.cpu().numpy()
            flat = module.uv_keypoints.cpu().numpy()
            uv = build_uv_data(mask, np.stack([flat // self.size, flat % self.size], 1))
        elif path.suffix == ".onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self._input = self._session.get_inputs()[0].name
            self.size = int(self._session.get_inputs()[0].shape[-1])
        elif path.name.endswith(".torchscript.pt"):
            self._module = torch.jit.load(str(path)).eval()
            manifest = path.parent / "export.json"
            if not manifest.is_file():
                raise UserError(f"prnet={path}: export.json beside it is needed for the input size")
            spec = json.loads(manifest.read_text())["modules"]["prnet"]["inputs"][0]["shape"]
            self.size = int(spec[-1])
        else:
            raise UserError(f"prnet={path}: expected a .ckpt, .onnx or .torchscript.pt file")
        if uv is None:
            folder = Path(uv_data) if uv_data else path.parent / "uv-data"
            if not folder.is_dir():
                raise UserError(
                    f"prnet={path}: an export needs the uv-data folder it was trained with (uv_data=<folder>; "
                    f"looked for {folder})"
                )
            uv = read_uv_data(folder)
        if uv.size != self.size:
            raise UserError(f"prnet={path}: the network makes {self.size} px maps, its uv-data is {uv.size} px")
        self.uv: UVData = uv

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
        if self._session is not None:
            out = self._session.run(None, {self._input: batch})[0]
        else:
            previous = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                with torch.inference_mode():
                    out = self._module(torch.from_numpy(batch)).numpy()
            finally:
                torch.set_num_threads(previous)
        return np.ascontiguousarray(out.transpose(0, 2, 3, 1))


def mean_face_position_map(size: int) -> tuple[np.ndarray, UVData]:
    """FaceWorld's neutral face as PRNet sees it: its crop position map at `size` and the matching uv data (the
    answer of stand-in networks in the app's tests and benchmarks). FaceWorld is imported here only."""
    from src.faceworld.writers.common import video_camera, world_for
    from src.faceworld.writers.prnet import prnet_crop_camera, prnet_position_map

    world = world_for(256, size)
    params = world.neutral_params(0)
    camera = prnet_crop_camera(world, params, video_camera(), size)
    rendered = world.render(params, camera, ("position_map",))["position_map"]
    position_map = prnet_position_map(rendered, world.uv_face_mask())
    return position_map, build_uv_data(world.uv_face_mask(), world.uv_keypoint_indices())
