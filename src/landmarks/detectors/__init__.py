"""Landmark detectors behind one interface (base.LandmarkDetector); pick one with conf/landmarks/<name>.yaml."""

from src.landmarks.detectors.base import DETECTORS, FaceDetection, LandmarkDetector, build_detector

__all__ = ["DETECTORS", "FaceDetection", "LandmarkDetector", "build_detector"]
