"""Count the faces in a frame, small ones included, for the gate's "exactly one face" rule.

The landmark model (mediapipe FaceMesh) finds faces with its short-range detector on a 128 px copy of the whole
frame, so a bystander whose face is a few percent of the frame wide is invisible to it, and a group photo of
~10%-wide faces reads as "no face". This counter runs mediapipe's full-range face detector (BlazeFace, 192 px input,
shipped inside the mediapipe wheel, so nothing is downloaded) on a pyramid of square tiles: on the finest level a
face of `min_face_px` fills `MIN_FACE_FRACTION` of a tile, the smallest share the model finds reliably on FaceWorld
faces; each coarser level starts where the one below stops, and the level sides are those that need the fewest
tiles for the frame's size. Detections of all tiles are merged (a box mostly inside a larger one is the same face
seen through a smaller tile). `python -m src.capture.face_count_eval` measures it against the landmark model on
FaceWorld.

Cost: one detector run (~7 ms on a loaded 2-core machine) per tile, and the tile count is set by the model: a 40 px
face must be 13% of a 192 px input, so the finest level alone needs ~(frame area) / (307 px - the largest face it
holds)^2 runs (80 of the 105 at 1900x2270). Cheaper per run did not pan out: the short-range model (128 px input) is
~3x faster per run but needs faces of 17-20% of its tile (more tiles, no gain overall); shrinking tiles with area
averaging or a lower confidence does not lower the 13%.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

# The smallest face (face width / tile side) the full-range model finds in every FaceWorld test tile: 40 px faces
# are all found in 384 px tiles and 42% of them in 512 px ones; at 0.11 of the tile, 2 of 32 composites in the
# evaluation (src/capture/face_count_eval.py) were missed, at 0.13 none.
MIN_FACE_FRACTION = 0.13
# A face up to this share of a tile is still found; tiles overlap so that any such face lies whole inside one.
MAX_FACE_FRACTION = 0.4
# Two boxes are one face when their overlap covers this share of the smaller one.
SAME_FACE_OVERLAP = 0.3


@dataclass(frozen=True)
class FaceBox:
    """One face found: (x, y, width, height) in pixels of the full frame and the detector's score in [0, 1]."""

    x: float
    y: float
    width: float
    height: float
    score: float

    @property
    def area(self) -> float:
        return self.width * self.height

    def overlap(self, other: FaceBox | tuple[float, float, float, float]) -> float:
        """Intersection area over the smaller box's area (1 when one box lies inside the other)."""
        ox, oy, ow, oh = (other.x, other.y, other.width, other.height) if isinstance(other, FaceBox) else other
        ix = max(0.0, min(self.x + self.width, ox + ow) - max(self.x, ox))
        iy = max(0.0, min(self.y + self.height, oy + oh) - max(self.y, oy))
        smaller = min(self.area, ow * oh)
        return ix * iy / smaller if smaller > 0 else 0.0


def tile_pyramid(height: int, width: int, min_face_px: float) -> list[tuple[int, int, int]]:
    """Square tiles (x, y, side) that together see every face from `min_face_px` up to the whole frame.

    A level of side T followed by a level of side N holds the faces from MIN_FACE_FRACTION * T up to
    MIN_FACE_FRACTION * N (the next level's smallest), so its stride T - MIN_FACE_FRACTION * N keeps each of them whole
    in at least one tile; N <= T * MAX_FACE_FRACTION / MIN_FACE_FRACTION keeps them within what the detector finds.
    The level sides are chosen for the fewest tiles over this frame (a level ratio near 2 instead of the largest
    one, 3.1, overlaps less: 105 instead of 133 tiles at 1900x2270). The last level is one tile over the whole frame
    (padded square by the caller). Cached: every frame of a capture has the same size.
    """
    if not min_face_px > 0:
        raise ValueError(f"gate.min_face_px must be positive, got {min_face_px}")
    return list(_cached_pyramid(int(height), int(width), float(min_face_px)))


@functools.lru_cache(maxsize=16)
def _cached_pyramid(height: int, width: int, min_face_px: float) -> tuple[tuple[int, int, int], ...]:
    longest = max(height, width)
    tiles: list[tuple[int, int, int]] = []
    side = math.floor(min_face_px / MIN_FACE_FRACTION)  # floor: a face of min_face_px is at least MIN of the tile
    if side < longest:
        for level_side, stride in _level_plan(height, width, side):
            for y in _starts(height, level_side, stride):
                for x in _starts(width, level_side, stride):
                    tiles.append((x, y, level_side))
    tiles.append((0, 0, longest))
    return tuple(tiles)


def _level_plan(height: int, width: int, first_side: int) -> list[tuple[int, int]]:
    """(side, stride) per level below the whole-frame tile, fewest tiles in all, by dynamic programming over the
    next level's side. Only the largest next side for each tile count along an axis can be optimal (a larger next
    side only shrinks the stride), so those are the candidates, plus the detector's limit and the frame itself."""
    longest = max(height, width)
    best: dict[int, tuple[int, list[tuple[int, int]]]] = {}

    def plan_from(side: int) -> tuple[int, list[tuple[int, int]]]:
        if side in best:
            return best[side]
        limit = math.floor(side * MAX_FACE_FRACTION / MIN_FACE_FRACTION)
        candidates = {min(limit, longest)}
        for length in (height, width):
            count = 2
            while length > side:
                # the largest next side whose stride still needs only `count` tiles along this axis
                next_side = math.floor((side - math.ceil((length - side) / (count - 1))) / MIN_FACE_FRACTION)
                if next_side > limit or count > length:  # past the detector's limit, or a stride under 1 px
                    break
                if next_side > side:
                    candidates.add(min(next_side, longest))
                count += 1
        choice: tuple[int, list[tuple[int, int]]] | None = None
        for next_side in candidates:
            stride = math.floor(side - MIN_FACE_FRACTION * next_side)
            if next_side <= side or stride < 1:
                continue
            tiles = _count_starts(height, side, stride) * _count_starts(width, side, stride)
            rest = (0, []) if next_side >= longest else plan_from(next_side)
            if choice is None or tiles + rest[0] < choice[0]:
                choice = (tiles + rest[0], [(side, stride), *rest[1]])
        if choice is None:
            raise ValueError(
                f"gate.min_face_px is too small: no tile pyramid over {width}x{height} from {side} px tiles"
            )
        best[side] = choice
        return choice

    return plan_from(first_side)[1]


def _count_starts(length: int, size: int, stride: int) -> int:
    """How many starts _starts yields."""
    return 1 if size >= length else math.ceil((length - size) / stride) + 1


def _starts(length: int, size: int, stride: int) -> Iterator[int]:
    """Tile starts along one axis: every `stride`, the last one flush with the far edge."""
    if size >= length:
        yield 0
        return
    position = 0
    while position + size < length:
        yield position
        position += stride
    yield length - size


class FaceCounter:
    """All faces of at least `min_face_px` (detection box side) in an RGB frame, by tiled full-range BlazeFace.

    Deterministic per image (the solution runs each tile afresh), so a resumed capture gates identically.
    """

    def __init__(self, min_face_px: float = 40.0, min_confidence: float = 0.5) -> None:
        if not min_face_px > 0:
            raise ValueError(f"gate.min_face_px must be positive, got {min_face_px}")
        if not 0 < min_confidence < 1:
            raise ValueError(f"gate.face_confidence must be in (0, 1), got {min_confidence}")
        try:
            from mediapipe.python.solutions import face_detection
        except ImportError as err:
            raise ImportError(f"the face counter needs `pip install mediapipe` ({err})") from None
        self.min_face_px = float(min_face_px)
        self.min_confidence = float(min_confidence)
        # model_selection=1: the full-range model (faces up to ~5 m), the one meant for small faces.
        self._detector = face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_confidence)

    def find(self, image_rgb: np.ndarray) -> list[FaceBox]:
        """Every face found, largest first, each once."""
        from src.landmarks.detectors.base import check_rgb_image

        image = check_rgb_image(image_rgb, "FaceCounter.find")
        if self._detector is None:
            raise RuntimeError("FaceCounter: used after close()")
        height, width = image.shape[:2]
        boxes = []
        for x, y, side in tile_pyramid(height, width, self.min_face_px):
            tile = image[y : y + side, x : x + side]
            if tile.shape[0] != side or tile.shape[1] != side:  # the model wants a square: pad, never stretch
                tile = np.pad(tile, ((0, side - tile.shape[0]), (0, side - tile.shape[1]), (0, 0)))
            result = self._detector.process(np.ascontiguousarray(tile))
            for detection in result.detections or []:
                box = detection.location_data.relative_bounding_box
                boxes.append(
                    FaceBox(
                        x + box.xmin * side, y + box.ymin * side, box.width * side, box.height * side,
                        float(detection.score[0]),
                    )
                )  # fmt: skip
        return merge_boxes(boxes)

    def count(self, image_rgb: np.ndarray) -> int:
        return len(self.find(image_rgb))

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def __enter__(self) -> FaceCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def merge_boxes(boxes: list[FaceBox]) -> list[FaceBox]:
    """One box per face, largest first: a box that mostly lies inside a larger kept one is that face again."""
    kept: list[FaceBox] = []
    for box in sorted(boxes, key=lambda b: -b.area):
        if all(box.overlap(other) < SAME_FACE_OVERLAP for other in kept):
            kept.append(box)
    return kept
