"""Head2Head's helpers: mouth / eye crops, the temporal discriminators' frame skipping, the held-out metrics and
the nearest-training-frame baseline.

Crops: the mouth centre is the median of landmarks 48.. (the original includes the two pupils, rows 68-69), the
crop 72x72 at 256x256 (scaled with the frame size), shifted to stay inside the frame. The eye crop is centred on
the mean of landmarks 36-47, twice as wide as tall.

Temporal frame skipping (vid2vid's get_skipped_frames): for scale s (skip 3**s with n_frames_D = 3) each window is
frames [t - 2k, t - k, t] of the history + current chunk, ending at the chunk's last frame and every 3 frames back,
at most as many as the chunk has frames; the history keeps the last 3**(scales-1) * 2 frames (detached).

Metrics (self-reenactment, 0-255 RGB): APD = mean over pixels of the L2 distance of the RGB vectors; MAPD the same
inside the NMFC foreground (non-black NMFC); mouth APD on the mouth crop; flicker = APD between a generated frame
and the previous generated frame warped by the flow of the REAL frames, on the flow's confident pixels (0 for a
perfectly temporally consistent video).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from src.models.components.flownet2_ops import resample2d

MOUTH_CROP_AT_256 = 72
NMFC_BACKGROUND = -0.98  # NMFC values in [-1, 1]; black background is -1 in every channel


def crop_size(image_size: int, at_256: int = MOUTH_CROP_AT_256) -> int:
    return max(8, round(at_256 * image_size / 256))


def mouth_centers(landmarks: torch.Tensor) -> torch.Tensor:
    """(..., 70, 2) pixels -> (..., 2): median of rows 48.. (as the original, pupils included)."""
    return landmarks[..., 48:, :].median(dim=-2).values


def eye_centers(landmarks: torch.Tensor) -> torch.Tensor:
    return landmarks[..., 36:48, :].mean(dim=-2)


def crop_around(images: torch.Tensor, centers: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, C, H, W) crops of (height, width) centred on (N, 2) (x, y) pixel centres, moved inside the frame."""
    size_h, size_w = images.shape[-2:]
    crops = []
    for image, (cx, cy) in zip(images, centers.tolist()):
        if cx != cx or cy != cy:  # NaN: no landmark there (eye-only landmark files): the frame centre
            cx, cy = size_w / 2, size_h / 2
        top = round(cy - height / 2)
        left = round(cx - width / 2)
        top = min(max(top, 0), max(size_h - height, 0))
        left = min(max(left, 0), max(size_w - width, 0))
        crops.append(image[:, top : top + height, left : left + width])
    return torch.stack(crops)


def skipped_windows(history: torch.Tensor | None, chunk: torch.Tensor, skip: int, n_frames_d: int = 3):
    """(windows (N*B, n_frames_d, ...) or None, the joined sequence): vid2vid's frame skipping, see docstring."""
    joined = chunk if history is None else torch.cat([history, chunk], 1)
    span = skip * (n_frames_d - 1)
    groups = min(joined.shape[1] - span, chunk.shape[1])
    windows = []
    for back in range(0, max(groups, 0), n_frames_d):
        end = joined.shape[1] - back
        windows.append(joined[:, end - 1 - span : end : skip])
    return (torch.cat(windows, 0) if windows else None), joined


def keep_history(joined: torch.Tensor, frames: int) -> torch.Tensor:
    return joined[:, -frames:].detach()


# ---------------------------------------------------------------------------------------------------- metrics
def pixel_distance(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Per-pixel L2 distance of RGB vectors at 0-255 for images in [-1, 1]: (..., 3, H, W) -> (..., H, W)."""
    return ((fake.float() - real.float()) * 127.5).norm(dim=-3)


def nmfc_foreground(nmfc: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) NMFC in [-1, 1] -> (..., H, W) bool: the rendered face (any channel above black)."""
    return (nmfc > NMFC_BACKGROUND).any(dim=-3)


def sequence_apd(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """(B, T, 3, H, W) -> (B,) mean pixel distance."""
    return pixel_distance(fake, real).flatten(1).mean(1)


def sequence_mapd(fake: torch.Tensor, real: torch.Tensor, nmfc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) mean pixel distance inside the NMFC foreground, and (B,) the count of frames with an empty NMFC
    (they are left out; a sequence with none is NaN)."""
    distance = pixel_distance(fake, real)
    mask = nmfc_foreground(nmfc).float()
    per_sequence = (distance * mask).flatten(1).sum(1) / mask.flatten(1).sum(1)
    empty = (mask.flatten(2).sum(2) == 0).sum(1).float()
    return per_sequence, empty


def sequence_mouth_apd(fake: torch.Tensor, real: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    batch, frames = fake.shape[:2]
    size = crop_size(fake.shape[-1])
    centers = mouth_centers(landmarks.float()).flatten(0, 1)
    fake_crops = crop_around(fake.flatten(0, 1), centers, size, size)
    real_crops = crop_around(real.flatten(0, 1), centers, size, size)
    return pixel_distance(fake_crops, real_crops).reshape(batch, frames, -1).mean((1, 2))


def sequence_flicker(fake: torch.Tensor, real: torch.Tensor, flow_estimator: nn.Module) -> torch.Tensor:
    """(B,) mean distance between fake_t and fake_{t-1} warped by the real frames' flow, on confident pixels."""
    if fake.shape[1] < 2:
        return torch.full((fake.shape[0],), float("nan"))
    flow, confidence = flow_estimator(real[:, 1:], real[:, :-1])
    batch, _pairs = flow.shape[:2]
    warped = resample2d(fake[:, :-1].flatten(0, 1).float(), flow.flatten(0, 1).float()).reshape(fake[:, 1:].shape)
    distance = pixel_distance(fake[:, 1:], warped)
    mask = confidence[:, :, 0].float()
    return (distance * mask).reshape(batch, -1).sum(1) / mask.reshape(batch, -1).sum(1).clamp_min(1.0)


# ---------------------------------------------------------------------------------------------------- baseline
class NearestTrainingFrame(nn.Module):
    """Baseline generator: the training frame whose NMFC is nearest (L2 on a 32x32 thumbnail) to the current one.

    Same call as the generator: forward(conditioning, previous) with the current frame's NMFC in conditioning's
    last `input_nc` channels (its first 3). A trained model must beat it on APD and flicker.
    """

    def __init__(self, thumbnails: torch.Tensor, images: torch.Tensor, input_nc: int = 6, side: int = 32) -> None:
        super().__init__()
        self.input_nc, self.side = input_nc, side
        self.register_buffer("thumbnails", thumbnails.float())
        # uint8 levels: 4000 frames at 256 px take 0.8 GB instead of 3 GB (the rounding is below half a level)
        self.register_buffer("images", ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))

    @staticmethod
    def thumbnail(nmfc: torch.Tensor, side: int = 32) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(nmfc.float(), side).flatten(1)

    @classmethod
    def from_batches(
        cls, batches: Iterable[dict], image_size: int | None = None, max_frames: int = 4000, input_nc: int = 6
    ) -> NearestTrainingFrame:
        thumbs, images = [], []
        count = 0
        for batch in batches:
            nmfc, image = batch["nmfc"].flatten(0, 1), batch["image"].flatten(0, 1)
            if image_size is not None and image.shape[-1] != image_size:
                image = nn.functional.interpolate(image.float(), size=(image_size, image_size), mode="bilinear")
            thumbs.append(cls.thumbnail(nmfc))
            images.append(image.float())
            count += len(image)
            if count >= max_frames:
                break
        if not images:
            raise ValueError("nearest-training-frame baseline: the training split yielded no frames")
        return cls(torch.cat(thumbs)[:max_frames], torch.cat(images)[:max_frames], input_nc)

    def forward(self, conditioning: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """The nearest training frame (in [-1, 1], 8-bit levels) of every batch item's current NMFC."""
        start = conditioning.shape[1] - self.input_nc
        current_nmfc = conditioning[:, start : start + 3]
        query = self.thumbnail(current_nmfc, self.side)
        nearest = torch.cdist(query, self.thumbnails).argmin(1)
        frames = self.images[nearest].float() / 127.5 - 1.0
        if frames.shape[-2:] != conditioning.shape[-2:]:
            frames = nn.functional.interpolate(frames, size=conditioning.shape[-2:], mode="bilinear")
        return frames
