"""RGBD capture conversion: unprocessed Kinect frames -> the processed rgbd_face training layout.

    from src.convert import run_conversion
    report = run_conversion({"input": "datasets/unprocessed/a", "output": "datasets/processed/a", "face_depth": 80})

Command line (Hydra, conf/convert.yaml): `python -m src.convert input=... output=... face_depth=80`.
"""

from src.convert.pipeline import NothingUsableError, run_conversion
from src.convert.report import ConversionReport
from src.convert.settings import ConvertSettings

__all__ = ["ConversionReport", "ConvertSettings", "NothingUsableError", "run_conversion"]
