"""Inference on a user's own data: photos or landmark files -> RGBD faces (see infer.py and docs/inference.md)."""
