"""Deployable modules: TorchScript / ONNX exports checked against eager PyTorch (see generator.py, spec.py)."""

from src.export.generator import (
    EXPORT_FORMATS,
    MANIFEST_FILE,
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    ExportError,
    export_generator,
    export_module,
    export_modules,
)
from src.export.spec import ExportInput, ExportSpec


def export_checkpoint(*args, **kwargs):
    """See src.export.checkpoint.export_checkpoint (imported lazily: it pulls in Lightning and Hydra)."""
    from src.export.checkpoint import export_checkpoint as _export_checkpoint

    return _export_checkpoint(*args, **kwargs)


__all__ = [
    "EXPORT_FORMATS",
    "MANIFEST_FILE",
    "ONNX_FILE",
    "TORCHSCRIPT_FILE",
    "ExportError",
    "ExportInput",
    "ExportSpec",
    "export_checkpoint",
    "export_generator",
    "export_module",
    "export_modules",
]
