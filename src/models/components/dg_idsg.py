"""IDSG, DG's ID-preserving shape generator (landmark space), and the face encoders it takes identity codes from.

Layout of the original (core_IDSG/model_lm_talking_tran.py): every network is an MLP of five Linear + LeakyReLU(0.2)
layers and a final Linear.
- landmark encoder: 136 -> 5 x 136 -> 136 (68 points x 2, divided by 256; x 3 with 3D landmarks);
- decoder: concat [landmark code, identity code] (136 + 4096) -> 5 x 512 -> 136, sigmoid: the target landmarks;
- landmark D: 136 -> 5 x 136 -> 1 logit;
- identity classifier: 136 -> 5 x 136 -> N identities, sigmoid (as the original; cross-entropy is taken on it).
The identity code comes from a face encoder: the original's frozen VGG-Face fc7 (4096-d; VGGFaceEncoder loads the
user's VGG-Face weights), or by default a small CNN trained here on FaceWorld identities (IdentityEncoder).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from src.utils.checkpoint import safe_torch_load
from src.utils.errors import CheckpointError


def he_init(module: nn.Module) -> None:
    """The original's initialisation (utils.he_init, applied to every network it trains): Kaiming-normal weights
    (fan in, ReLU gain) and zero biases for every conv and linear layer. PyTorch's default init shrinks the signal
    through the five-layer MLPs so far that the decoder only learns a constant."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class LandmarkMLP(nn.Module):
    """`depth` x (Linear + LeakyReLU(0.2)) then Linear; optional sigmoid on the output."""

    def __init__(self, in_features: int, hidden: int, out_features: int, depth: int = 5, sigmoid: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        layers.append(nn.Linear(width, out_features))
        self.main = nn.Sequential(*layers)
        self.sigmoid = sigmoid
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.main(x)
        return torch.sigmoid(out) if self.sigmoid else out


class LandmarkDecoder(nn.Module):
    """concat [landmark code, identity code] -> MLP -> sigmoid landmarks in [0, 1]."""

    def __init__(self, landmark_code: int, identity_code: int, hidden: int = 512, out_features: int = 136):
        super().__init__()
        self.mlp = LandmarkMLP(landmark_code + identity_code, hidden, out_features, sigmoid=True)

    def forward(self, landmark_code: torch.Tensor, identity_code: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([landmark_code, identity_code], dim=1))


class IdentityEncoder(nn.Module):
    """The default face encoder: a small CNN (stride-2 conv blocks, global average pool, linear) from a face crop in
    [0, 1] to an identity code, trained here with an identity-classification head (`classify`)."""

    def __init__(self, code_dim: int = 256, channels: int = 32, blocks: int = 4, num_identities: int = 1):
        super().__init__()
        layers: list[nn.Module] = []
        width = 3
        for index in range(blocks):
            out = channels * 2**index
            layers += [nn.Conv2d(width, out, 3, 2, 1), nn.BatchNorm2d(out), nn.LeakyReLU(0.2)]
            layers += [nn.Conv2d(out, out, 3, 1, 1), nn.BatchNorm2d(out), nn.LeakyReLU(0.2)]
            width = out
        self.features = nn.Sequential(*layers)
        self.embed = nn.Linear(width, code_dim)  # not `code`: torch.fx graph modules own that name
        self.head = nn.Linear(code_dim, num_identities)
        self.code_dim = code_dim
        he_init(self)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.embed(self.features(image * 2.0 - 1.0).mean(dim=(2, 3)))

    def classify(self, code: torch.Tensor) -> torch.Tensor:
        return self.head(code)


# VGG-Face (Parkhi et al. 2015) = VGG-16 convolutions + fc6 / fc7 (4096) + fc8 (2622 identities).
VGG_FACE_CONVS = (
    ("conv1_1", 3, 64), ("conv1_2", 64, 64), None,
    ("conv2_1", 64, 128), ("conv2_2", 128, 128), None,
    ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), None,
    ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512), None,
    ("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512), None,
)  # fmt: skip
# vgg_face_dag's per-channel mean (RGB, 0-255 scale) of its training faces.
VGG_FACE_MEAN = (129.186279296875, 104.76238250732422, 93.59396362304688)


class VGGFaceEncoder(nn.Module):
    """VGG-Face up to fc7 (4096-d after ReLU), the original's identity code; input a crop in [0, 1], resized to 224.

    weights: a state dict with VGG-Face's layer names (conv1_1.weight ... fc7.bias; the `vgg_face_dag.pth`
    conversion, fc8 ignored) or null for random weights (tests). Frozen: it is never trained here."""

    def __init__(self, weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        layers: dict[str, nn.Module] = {}
        for index, spec in enumerate(VGG_FACE_CONVS):
            if spec is None:
                layers[f"pool{index}"] = nn.MaxPool2d(2, 2)
            else:
                name, cin, cout = spec
                layers[name] = nn.Conv2d(cin, cout, 3, 1, 1)
                layers[f"relu{name[4:]}"] = nn.ReLU(inplace=False)
        self.features = nn.Sequential()
        for name, layer in layers.items():
            self.features.add_module(name, layer)
        self.fc6 = nn.Linear(512 * 7 * 7, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.register_buffer("mean", torch.tensor(VGG_FACE_MEAN).view(1, 3, 1, 1) / 255.0)
        self.code_dim = 4096
        if weights is not None:
            self.load_vgg_face(weights)
        self.requires_grad_(False)

    def load_vgg_face(self, path: str | os.PathLike) -> None:
        """Load VGG-Face weights (layer names as in vgg_face_dag); one CheckpointError names what does not fit."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise CheckpointError(f"{path}: VGG-Face weights not found (model.face_encoder.weights)")
        state = safe_torch_load(path, what="VGG-Face weights file")
        ours = {k.split(".", 1)[1] if k.startswith("features.") else k: k for k in self.state_dict() if k != "mean"}
        missing = [name for name in ours if name not in state]
        wrong = [n for n in ours if n in state and state[n].shape != self.state_dict()[ours[n]].shape]
        if missing or wrong:
            raise CheckpointError(
                f"{path}: not VGG-Face weights in the vgg_face_dag layout (missing {missing[:4]}, wrong shape "
                f"{wrong[:4]})"
            )
        self.load_state_dict({ours[name]: state[name] for name in ours} | {"mean": self.mean}, strict=True)

    def train(self, mode: bool = True) -> VGGFaceEncoder:
        return super().train(False)  # frozen

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(image, size=(224, 224), mode="bilinear", align_corners=False) - self.mean
        x = self.features(x * 255.0).flatten(1)
        return F.relu(self.fc7(F.relu(self.fc6(x))))


class IDSGenerator(nn.Module):
    """IDSG: (reference landmarks (B, K), source face (B, 3, H, W)) -> target landmarks (B, K) in [0, 1].

    The networks the system trains, averages (EMA) and exports together: landmark encoder, face encoder, decoder.
    residual=False is the original (the decoder's sigmoid output IS the landmarks); residual=True (a setting of
    this framework, off by default) adds the decoder's output, without the sigmoid and starting at zero, to the
    reference landmarks: IDSG then starts as "copy the reference" and learns only the identity's shape change.

    Two further settings of this framework (off by default = the original), for short runs on few identities:
    normalize_landmarks feeds the landmark encoder (landmarks - landmark_mean) / landmark_std, buffers fitted on
    the training split (DGIDSGModule.fit_statistics; raw landmarks near 0.5 with spreads of a few hundredths
    condition the five-layer MLP badly); linear_skip (residual only) adds a zero-initialised linear map of
    [normalised landmarks, identity code] to the change: the map from the reference's pose to the target is close
    to linear, which the deep MLPs alone learn slowly and, on a few hundred identities, overfit."""

    def __init__(
        self,
        landmark_encoder: nn.Module,
        face_encoder: nn.Module,
        decoder: nn.Module,
        residual: bool = False,
        normalize_landmarks: bool = False,
        linear_skip: bool = False,
    ) -> None:
        super().__init__()
        self.landmark_encoder = landmark_encoder
        self.face_encoder = face_encoder
        self.decoder = decoder
        self.residual = bool(residual)
        self.normalize_landmarks = bool(normalize_landmarks)
        features = int(decoder.mlp.main[-1].out_features)
        self.register_buffer("landmark_mean", torch.zeros(features))
        self.register_buffer("landmark_std", torch.ones(features))
        if linear_skip and not self.residual:
            raise ValueError("linear_skip needs residual=True (it adds to the change of the reference landmarks)")
        self.skip: nn.Linear | None = None
        if linear_skip:
            self.skip = nn.Linear(features + int(face_encoder.code_dim), features)
            nn.init.zeros_(self.skip.weight)
            nn.init.zeros_(self.skip.bias)
        if self.residual:
            self.decoder.mlp.sigmoid = False
            last = self.decoder.mlp.main[-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def normalized(self, landmarks: torch.Tensor) -> torch.Tensor:
        """What the landmark encoder (and the skip) read: the landmarks, standardised when normalize_landmarks."""
        if not self.normalize_landmarks:
            return landmarks
        return (landmarks - self.landmark_mean) / self.landmark_std

    def encode_landmarks(self, landmarks: torch.Tensor) -> torch.Tensor:
        return self.landmark_encoder(self.normalized(landmarks))

    def decode_from_code(self, landmarks: torch.Tensor, landmark_code: torch.Tensor, identity: torch.Tensor):
        """Decoder output as landmarks (with the reference added when residual)."""
        out = self.decoder(landmark_code, identity)
        if self.skip is not None:
            out = out + self.skip(torch.cat([self.normalized(landmarks), identity], dim=1))
        return landmarks + out if self.residual else out

    def encode_identity(self, image: torch.Tensor) -> torch.Tensor:
        return self.face_encoder(image)

    def decode(self, landmarks: torch.Tensor, identity_code: torch.Tensor) -> torch.Tensor:
        return self.decode_from_code(landmarks, self.encode_landmarks(landmarks), identity_code)

    def forward(self, landmarks: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.decode(landmarks, self.encode_identity(image))


class IDSGLandmarkHead(nn.Module):
    """The exported IDSG core: (landmark vector, identity code) -> landmarks (the face encoder is exported apart)."""

    def __init__(self, generator: IDSGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, landmarks: torch.Tensor, identity_code: torch.Tensor) -> torch.Tensor:
        return self.generator.decode(landmarks, identity_code)


class CopyReferenceLandmarks(nn.Module):
    """Baseline: the reference's landmarks unchanged (what IDSG must beat: the source's face shape is ignored)."""

    def forward(self, landmarks: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return landmarks


def build_idsg(
    landmark_dims: int = 2,
    face_encoder: str = "identity",
    code_dim: int = 256,
    channels: int = 32,
    blocks: int = 4,
    num_identities: int = 1,
    vgg_face_weights: str | None = None,
    landmark_hidden: int | None = None,
    decoder_hidden: int = 512,
    residual: bool = False,
    normalize_landmarks: bool = False,
    linear_skip: bool = False,
) -> IDSGenerator:
    """IDSGenerator from sizes (Hydra target of conf/model/dg_idsg.yaml). face_encoder: "identity" (default, trained
    here) or "vgg_face" (the original's frozen 4096-d fc7; needs vgg_face_weights). normalize_landmarks, linear_skip:
    see IDSGenerator."""
    features = 68 * landmark_dims
    if face_encoder == "vgg_face":
        encoder: nn.Module = VGGFaceEncoder(vgg_face_weights)
    elif face_encoder == "identity":
        encoder = IdentityEncoder(code_dim, channels, blocks, num_identities)
    else:
        raise ValueError(f"face_encoder must be 'identity' or 'vgg_face', got {face_encoder!r}")
    landmark_encoder = LandmarkMLP(features, landmark_hidden or features, features)
    decoder = LandmarkDecoder(features, encoder.code_dim, decoder_hidden, features)
    return IDSGenerator(landmark_encoder, encoder, decoder, residual, normalize_landmarks, linear_skip)


def eye_fix(generated: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The original demo's `turn_eye`: the generated eyelids (points 37, 38, 43, 44) are placed at the generated lower
    lid (41, 40, 47, 46) plus the REFERENCE's lid opening scaled by generated / reference width of the eye 36-39,
    so blinks of the reference survive IDSG. Landmark vectors (B, 68 * D) as x0, y0[, z0], x1, ...; returns a copy."""
    gen = generated.reshape(generated.shape[0], 68, -1)
    ref = reference.reshape(reference.shape[0], 68, -1)
    width = lambda p: (p[:, 36] - p[:, 39]).norm(dim=1, keepdim=True)  # noqa: E731
    ratio = width(gen) / width(ref).clamp_min(1e-8)
    out = gen.clone()
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
        out[:, upper] = gen[:, lower] + (ref[:, upper] - ref[:, lower]) * ratio
    return out.reshape(generated.shape)


def landmark_mlp(
    landmark_dims: int = 2, out_features: int = 1, hidden: int | None = None, sigmoid: bool = False
) -> LandmarkMLP:
    """The original's landmark MLP over 68 x landmark_dims values (hidden width = input width by default): the
    landmark D (out 1) and the identity classifier (out N, sigmoid)."""
    features = 68 * int(landmark_dims)
    return LandmarkMLP(features, hidden or features, out_features, sigmoid=sigmoid)
