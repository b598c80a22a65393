"""Local Swin-T weights for the visual branch: loaded by :func:`load_visual_weights`, converted from other layouts to
torchvision's ``SwinTransformer3d`` layout by :func:`convert_state_dict`. Never downloads.

A weights file holds a state dict, bare or under ``"state_dict"`` / ``"model"`` (:func:`unwrap_state_dict`); its
keys may carry the prefixes of :data:`KEY_PREFIXES`, which are stripped (:func:`strip_prefixes`).

Layouts recognised by :func:`detect_layout` (after stripping the prefixes):

- ``"torchvision"``: torchvision ``swin3d_t`` keys (``patch_embed.proj.weight``, ``features.0.0.norm1.weight``);
  returned as they are.
- ``"video-swin"``: the original Video Swin Transformer repo (mmaction2 checkpoints such as
  ``swin_tiny_patch244_window877_kinetics400_1k.pth``): ``layers.i.blocks.j.*``, ``layers.i.downsample.*`` (the
  patch merging at the end of stage i), ``mlp.fc1`` / ``mlp.fc2``, ``cls_head.fc_cls.*``. torchvision numbers its
  ``features`` stage, merging, stage, ..., so stage i is ``features.{2i}`` and its merging ``features.{2i+1}``.
- ``"swin2d-inflated"``: a 2-D Swin-T (Microsoft's Swin-Transformer, e.g. ``swin_tiny_patch4_window7_224_22k.pth``
  with the same ``layers.*`` names, or torchvision's ``swin_t`` with ``features.0.0.weight`` as patch embedding),
  inflated to 3-D as Video Swin does: the patch-embedding kernel is repeated over time and divided by its temporal
  size, each relative-position bias table is tiled over the temporal offsets, and the 2-D head is dropped.

Buffers the model derives from its window (``relative_position_index``, 2-D ``attn_mask``) are dropped and the
3-D index is written afresh, so a converted file loads with no missing keys. Keys that no rule knows are kept
under their own name, so :func:`load_visual_weights` lists them as unexpected rather than losing them silently.
:func:`load_audio_weights` loads torchvision's ImageNet ResNet-34 into the audio branch. Command line:
``emotions convert-weights SRC DST``.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from baselines.checkpoint import archive_problem
from baselines.model import build_swin3d_t
from emotions_data.storage import atomic_path

log = logging.getLogger(__name__)

KEY_PREFIXES = ("module.", "model.", "visual.backbone.", "backbone.")  # stripped in this order

SWIN_T_WINDOW = (8, 7, 7)  # (T, H, W) attention window of the AV-CANet visual branch
SWIN_T_PATCH_T = 2  # temporal patch size: the 2-D kernel is repeated this many times when inflated

LAYOUTS = ("torchvision", "video-swin", "swin2d-inflated")

_BLOCK = re.compile(r"layers\.(\d+)\.blocks\.(\d+)\.(.+)")
_DOWNSAMPLE = re.compile(r"layers\.(\d+)\.downsample\.(.+)")
_TV2D_FEATURE = re.compile(r"features\.(\d+)\.(.+)")
# torchvision's MLP is Sequential(Linear, GELU, Dropout, Linear, Dropout): fc1 is entry 0, fc2 entry 3
_MLP = {"mlp.fc1.": "mlp.0.", "mlp.fc2.": "mlp.3."}
_RECOMPUTED = (".relative_position_index", ".attn_mask")  # derived from the window, not learned
_TABLE = ".attn.relative_position_bias_table"
HEAD_PREFIXES = {"visual": ("head.",), "audio": ("fc.",)}  # the file's classifier, of no use here


def strip_prefixes(key: str) -> str:
    """``key`` without the wrappers' prefixes of :data:`KEY_PREFIXES`, e.g. ``module.backbone.x`` -> ``x``."""
    for prefix in KEY_PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def unwrap_state_dict(obj: object) -> dict[str, Tensor]:
    """The state dict in what ``torch.load`` returned: ``obj`` itself, or the mapping under ``"state_dict"`` or
    ``"model"`` of a checkpoint. Raises ``ValueError`` when that is not a mapping of names to tensors."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError("weights file does not hold a state dict (a mapping of names to tensors)")
    return obj


def _sample(keys: list[str], n: int = 4) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def detect_layout(state: dict[str, Tensor]) -> str | None:
    """The layout of ``state`` (one of :data:`LAYOUTS`), or ``None`` when it is none of them or mixes two."""
    keys = {strip_prefixes(k): t for k, t in state.items()}
    original = any(_BLOCK.match(k) or _DOWNSAMPLE.match(k) for k in keys)
    features = any(k.startswith("features.") for k in keys)
    if original and features:
        return None
    if original:
        embed = keys.get("patch_embed.proj.weight")
        # without the patch embedding, a 2-D checkpoint still shows itself by its stored shift masks
        two_d = embed.dim() == 4 if embed is not None else any(k.endswith(".attn_mask") for k in keys)
        return "swin2d-inflated" if two_d else "video-swin"
    embed_2d = keys.get("features.0.0.weight")
    if embed_2d is not None and embed_2d.dim() == 4:
        return "swin2d-inflated"
    if features or "patch_embed.proj.weight" in keys:
        return "torchvision"
    return None


def relative_position_index(window: tuple[int, int, int] = SWIN_T_WINDOW) -> Tensor:
    """Index into the 3-D bias table for every token pair of a (T, H, W) window: ((dt*(2H-1) + dh)*(2W-1) + dw)."""
    coords = torch.stack(torch.meshgrid(*(torch.arange(w) for w in window), indexing="ij")).flatten(1)  # 3, N
    offsets = coords[:, :, None] - coords[:, None, :] + torch.tensor([w - 1 for w in window])[:, None, None]
    return (offsets[0] * (2 * window[1] - 1) + offsets[1]) * (2 * window[2] - 1) + offsets[2]


def _rename_original(key: str) -> str:
    """A key of the original Swin repos (2-D or 3-D, same names) -> torchvision swin3d name; unknown keys kept."""
    if m := _BLOCK.fullmatch(key):
        rest = m[3]
        for old, new in _MLP.items():
            if rest.startswith(old):
                rest = new + rest[len(old) :]
        return f"features.{2 * int(m[1])}.{m[2]}.{rest}"
    if m := _DOWNSAMPLE.fullmatch(key):
        return f"features.{2 * int(m[1]) + 1}.{m[2]}"
    if key.startswith("cls_head.fc_cls."):  # mmaction2's I3DHead: the Kinetics classifier
        return "head." + key[len("cls_head.fc_cls.") :]
    return key


def _rename_torchvision_2d(key: str) -> str:
    """torchvision swin_t -> swin3d_t: features.0 is its patch embedding (Conv2d, Permute, LayerNorm)."""
    if key.startswith("features.0.0."):
        return "patch_embed.proj." + key[len("features.0.0.") :]
    if key.startswith("features.0.2."):
        return "patch_embed.norm." + key[len("features.0.2.") :]
    if (m := _TV2D_FEATURE.fullmatch(key)) and int(m[1]) > 0:
        return f"features.{int(m[1]) - 1}.{m[2]}"
    return key


def _inflate(name: str, tensor: Tensor, window: tuple[int, int, int], patch_t: int) -> Tensor:
    """2-D -> 3-D: patch kernel repeated over time / patch_t; bias table tiled over the 2T-1 temporal offsets."""
    if name == "patch_embed.proj.weight" and tensor.dim() == 4:
        # a clip of identical frames then gives the 2-D response: the patch_t copies sum back to one kernel
        return tensor.unsqueeze(2).repeat(1, 1, patch_t, 1, 1) / patch_t
    if name.endswith(_TABLE) and tensor.shape[0] == (2 * window[1] - 1) * (2 * window[2] - 1):
        # row dt*(2H-1)*(2W-1) + k of the 3-D table is row k of the 2-D one for every temporal offset dt; a table
        # of another spatial window is left as it is and reported as a shape mismatch by the loader
        return tensor.repeat(2 * window[0] - 1, 1)
    return tensor


def convert_state_dict(
    state: dict[str, Tensor],
    source: str = "state dict",
    window: tuple[int, int, int] = SWIN_T_WINDOW,
    patch_t: int = SWIN_T_PATCH_T,
) -> tuple[dict[str, Tensor], str]:
    """``state`` in any layout of :data:`LAYOUTS` -> (torchvision swin3d state dict, the detected layout).

    ``head.*`` is kept where it is a video classifier (torchvision, Video Swin's ``cls_head.fc_cls``) and dropped
    for 2-D sources. Raises ``ValueError`` naming ``source`` and a few keys when the layout is not recognised.
    """
    layout = detect_layout(state)
    if layout is None:
        raise ValueError(
            f"{source}: not a Swin-T state dict in one known layout ({', '.join(LAYOUTS)}); "
            f"{len(state)} keys, e.g. {_sample(list(state))}"
        )
    keys = {strip_prefixes(k): t for k, t in state.items()}
    if layout == "torchvision":
        return keys, layout
    torchvision_2d = "features.0.0.weight" in keys
    out: dict[str, Tensor] = {}
    for key, tensor in keys.items():
        if key.endswith(_RECOMPUTED):
            continue
        name = _rename_torchvision_2d(key) if torchvision_2d else _rename_original(key)
        if layout == "swin2d-inflated":
            if name.startswith("head."):  # an ImageNet classifier has no use on video
                continue
            tensor = _inflate(name, tensor, window, patch_t)
        out[name] = tensor
    index = relative_position_index(window)
    for name in [k for k in out if k.endswith(_TABLE)]:
        out[name.removesuffix(_TABLE) + ".attn.relative_position_index"] = index
    return out, layout


@dataclass
class WeightReport:
    """What :func:`load_visual_weights` did: keys loaded, and every key it could not use."""

    path: str
    part: str = "visual"  # which backbone: "visual" or "audio"
    sha256: str = ""  # of the file
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the file
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the model
    mismatched: list[str] = field(default_factory=list)  # in both, different shapes ("key: file vs model")
    ignored: list[str] = field(default_factory=list)  # classification head of the file (removed here)

    def record(self) -> dict:
        """What a run records of the loading: file name (not its local path), SHA-256, the file's tensors loaded and
        skipped (unexpected, shape mismatch, classifier), and the backbone's tensors left at random init."""
        skipped = len(self.unexpected) + len(self.mismatched) + len(self.ignored)
        return {"part": self.part, "file": Path(self.path).name, "sha256": self.sha256, "loaded": len(self.loaded),
                "skipped": skipped, "kept_random": len(self.missing)}  # fmt: skip

    def __str__(self) -> str:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f", ... (+{len(keys) - 8})" if len(keys) > 8 else "")

        lines = [f"{self.path}: loaded {len(self.loaded)} tensors"]
        for name, keys in [
            ("missing (kept at random init)", self.missing),
            ("unexpected (not used)", self.unexpected),
            ("shape mismatch (not used)", self.mismatched),
            ("ignored head", self.ignored),
        ]:
            if keys:
                lines.append(f"  {len(keys)} {name}: {few(keys)}")
        return "\n".join(lines)


def read_weights_file(path: str | Path) -> dict[str, Tensor]:
    """The state dict in the weights file `path` (see :func:`unwrap_state_dict`), read with
    ``torch.load(weights_only=True)`` after checking that a zip archive is whole (a torn download, a flipped byte).

    Raises ``ValueError`` naming ``path`` when it is missing, truncated, damaged, not a torch file, holds more than
    tensors and plain containers, or holds no state dict; ``OSError`` when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such weights file")
    problem = archive_problem(path)
    if problem is not None and problem[0] != "foreign":  # a file that is no zip may be torch's legacy format
        raise ValueError(f"{path}: {problem[0]} weights file ({problem[1]})")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" not in str(err):
            raise ValueError(f"{path}: not a torch weights file ({_first_line(err)})") from None
        why = next((line.strip() for line in str(err).splitlines() if "Unsupported global" in line), "")
        raise ValueError(  # e.g. numpy scalars in a checkpoint's metadata
            f"{path}: torch.load(weights_only=True) loads only tensors and plain containers; re-save the state dict "
            f"alone from a copy you trust ({why or 'see torch.load'})"
        ) from None
    except Exception as err:  # the legacy unpickler fails in many ways on what is not a torch file
        raise ValueError(f"{path}: not a torch weights file ({_first_line(err)})") from None
    try:
        return unwrap_state_dict(obj)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def _first_line(err: BaseException) -> str:
    """`KeyError: 101`, not a bare `101`."""
    return f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"


def _backbone(model: nn.Module, part: str) -> nn.Module:
    """The backbone of ``part`` ("visual" or "audio") in a whole model, a branch, or the backbone itself."""
    branch = getattr(model, part, None)
    if isinstance(branch, nn.Module) and hasattr(branch, "backbone"):
        return branch.backbone
    return getattr(model, "backbone", model)


def _load_into(backbone: nn.Module, state: dict[str, Tensor], path: Path, part: str) -> WeightReport:
    """Load the tensors of ``state`` that fit ``backbone`` (``strict=False``); the file's ``head.``/``fc.`` classifier
    is ignored. Raises ``ValueError`` when no key fits."""
    report = WeightReport(path=str(path), part=part, sha256=file_sha256(path))
    own = backbone.state_dict()
    usable: dict[str, Tensor] = {}
    for key, tensor in state.items():
        name = strip_prefixes(key)
        if name.startswith(HEAD_PREFIXES[part]):
            report.ignored.append(key)
        elif name not in own:
            report.unexpected.append(key)
        elif own[name].shape != tensor.shape:
            report.mismatched.append(f"{key}: {tuple(tensor.shape)} vs {tuple(own[name].shape)}")
        else:
            usable[name] = tensor
    if not usable:
        raise ValueError(
            f"no key of {path} fits the {part} backbone ({len(state)} keys in the file, {len(own)} expected); "
            f"{report}\n  expected keys look like: {', '.join(list(own)[:4])}"
        )
    result = backbone.load_state_dict(usable, strict=False)
    report.loaded = sorted(usable)
    report.missing = sorted(result.missing_keys)
    if report.missing or report.unexpected or report.mismatched:
        log.warning("partial %s weights: %s", part, report)
    else:
        log.info("%s weights: %s", part, report)
    return report


def load_visual_weights(model: nn.Module, path: str | Path) -> WeightReport:
    """Load a local swin3d_t state dict (torchvision key layout, e.g. Kinetics-400 or ImageNet-22K-inflated) into
    the visual backbone of ``model`` (the network, its visual branch or the backbone itself).

    Files in the original Video Swin or in a 2-D Swin-T layout are converted first (:func:`convert_state_dict`).
    The prefixes of :data:`KEY_PREFIXES` are stripped, the file's ``head.*`` is ignored, and keys are loaded with
    ``strict=False``; the report lists missing, unexpected and shape-mismatched keys (also logged). Raises
    ``ValueError`` when the file cannot be read as weights (:func:`read_weights_file`) or no key of it fits the
    backbone. Never downloads.
    """
    state = read_weights_file(path)
    if detect_layout(state) not in (None, "torchvision"):
        state, layout = convert_state_dict(state, source=str(path))
        log.info("%s: converted from the %s layout", path, layout)
    return _load_into(_backbone(model, "visual"), state, Path(path), "visual")


def load_audio_weights(model: nn.Module, path: str | Path) -> WeightReport:
    """Load a local ResNet-34 state dict in torchvision's layout (``resnet34`` ImageNet weights: ``conv1.weight``,
    ``layer1.0.conv1.weight``, ..., ``fc.*``) into the audio backbone of ``model`` (the network, its audio branch
    or the backbone itself), as the authors do (``resnet34(pretrained=True)``, ``strict=False``): the 3-channel
    7×7 ``conv1`` does not fit the 1-channel (7×1) MFCC conv and stays at random init (listed as a shape
    mismatch), ``fc.*`` is ignored. Raises ``ValueError`` as :func:`load_visual_weights`. Never downloads."""
    return _load_into(_backbone(model, "audio"), read_weights_file(path), Path(path), "audio")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks. Raises ``OSError`` when it cannot be read."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Conversion:
    """What :func:`convert_checkpoint` did: the source layout, and how the written file loads into swin3d_t."""

    src: str
    dst: str
    layout: str
    report: WeightReport

    def __str__(self) -> str:
        return f"{self.src}: {self.layout} layout -> {self.dst}\n{self.report}"


def convert_checkpoint(src: Path, dst: Path) -> Conversion:
    """Convert the weights file ``src`` to a torchvision-layout state dict at ``dst``, written atomically.

    The written file is then loaded into a fresh Video Swin-T, so the returned report says what would load.
    Raises ``ValueError`` when ``src`` holds no state dict, or one in no known layout.
    """
    src, dst = Path(src), Path(dst)
    state = read_weights_file(src)
    converted, layout = convert_state_dict(state, source=str(src))
    with atomic_path(dst) as tmp, open(tmp, "wb") as handle:
        # a handle, not a path: torch would name the archive inside after the temp file, a random name
        torch.save(converted, handle)
    return Conversion(str(src), str(dst), layout, load_visual_weights(build_swin3d_t(0.0), dst))
