"""Training-time data augmentation: batched uint8 image transforms with per-sample randomness.

`build_augment(mode)` returns a callable ``augment(images, generator)`` for each mode of the
augmentation study (REFERENCE.md section 4). It takes a uint8 batch (N, C, H, W), C = 1 or 3, on
any device, and returns a new uint8 batch of the same shape on the same device ("none" returns the
input itself). The input is never modified.

Randomness. Every draw comes from the given `torch.Generator` (on the generator's device, then
moved to the images' device), in a fixed order, so the same generator state gives the same output.
Each sample gets its own draws: crop offsets, flip, op, magnitude bin, sign, erased box, mixing
weights. (torchvision's v2 transforms make one draw per call, so a batch tensor would share them.)

Semantics follow `torchvision.transforms.v2`:

- crop-flip: RandomCrop((H, W), padding=4, fill 0) then RandomHorizontalFlip(p=0.5), done for
  the whole batch as one zero-pad and two gathers.
- RandAugment(num_ops=2, magnitude=9), TrivialAugmentWide, AutoAugment(CIFAR10) and AugMix (its
  defaults: severity 3, width 3, depth 1-3, alpha 1, all ops, bilinear) use torchvision's op
  spaces, magnitude bins, signs, probabilities, fill 0 and interpolation (nearest but for AugMix).
  Each op is one kernel that takes a per-sample magnitude and reproduces torchvision's functional
  op (tests compare them pixel for pixel); the samples are grouped by drawn op and each group is
  transformed in one batched call, so the loop runs over op kinds, never over images.
- RandomErasing(p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0), with torchvision's ten
  tries per sample to find a box that fits (no erasing when none does), all samples at once.
- Grey-scale input is handled as torchvision handles 1-channel tensors: Color (saturation) leaves
  it unchanged and Contrast blends with the image mean; every other op works per channel.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as nnf
from torchvision.transforms.v2 import functional as tvf

from medunlearn.config import AugMode

AUG_MODES: tuple[str, ...] = typing.get_args(AugMode)


__all__ = ["AUG_MODES", "Augment", "build_augment"]


class Augment(Protocol):
    """A batched augmentation: uint8 (N, C, H, W) in, uint8 of the same shape and device out."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


_Step = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
_Magnitudes = Callable[[int, int, int], torch.Tensor | None]
_Kernel = Callable[[torch.Tensor, torch.Tensor, str], torch.Tensor]
_OpSpace = dict[str, tuple[_Magnitudes, bool]]

_CROP_PADDING = 4
_DEG_TO_RAD = math.pi / 180.0
_RAD_TO_DEG = 180.0 / math.pi


# --- random draws ---------------------------------------------------------------------------


def _uniform(
    shape: tuple[int, ...], generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Float64 draws uniform in [0, 1) from `generator`, on `device`."""
    draws = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64)
    return draws.to(device)


def _integers(
    high: int, shape: tuple[int, ...], generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Int64 draws uniform in [0, high) from `generator`, on `device`."""
    return torch.randint(high, shape, generator=generator, device=generator.device).to(device)


def _dirichlet_ones(
    n: int, k: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """(n, k) float32 rows drawn from Dirichlet(1, ..., 1): normalised Exp(1) draws."""
    draws = torch.empty((n, k), dtype=torch.float64, device=generator.device)
    draws.exponential_(generator=generator)
    return (draws / draws.sum(dim=1, keepdim=True)).float().to(device)


# --- crop-flip and random erasing -----------------------------------------------------------


def _crop_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """RandomCrop((H, W), padding=4, zero fill) then horizontal flip with p=0.5, per sample."""
    n, c, h, w = images.shape
    device = images.device
    top = _integers(2 * _CROP_PADDING + 1, (n,), generator, device)
    left = _integers(2 * _CROP_PADDING + 1, (n,), generator, device)
    flip = _uniform((n,), generator, device) < 0.5
    padded = nnf.pad(images, (_CROP_PADDING,) * 4)
    rows = top[:, None] + torch.arange(h, device=device)
    cols = left[:, None] + torch.arange(w, device=device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    picked_rows = padded.gather(2, rows[:, None, :, None].expand(n, c, h, padded.shape[3]))
    return picked_rows.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def _random_erasing(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """RandomErasing(p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0), per sample."""
    n, _, h, w = images.shape
    device = images.device
    tries = 10
    erase_area = h * w * (0.02 + (0.33 - 0.02) * _uniform((n, tries), generator, device))
    log_low, log_high = math.log(0.3), math.log(3.3)
    log_ratio = log_low + (log_high - log_low) * _uniform((n, tries), generator, device)
    aspect = torch.exp(log_ratio)
    box_h = torch.round(torch.sqrt(erase_area * aspect))
    box_w = torch.round(torch.sqrt(erase_area / aspect))
    fits = (box_h < h) & (box_w < w)
    first_fit = fits.to(torch.uint8).argmax(dim=1, keepdim=True)
    box_h = box_h.gather(1, first_fit).squeeze(1)
    box_w = box_w.gather(1, first_fit).squeeze(1)
    top = torch.floor(_uniform((n,), generator, device) * (h - box_h + 1))
    left = torch.floor(_uniform((n,), generator, device) * (w - box_w + 1))
    erase = (_uniform((n,), generator, device) < 0.5) & fits.any(dim=1)
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    in_rows = (rows >= top[:, None]) & (rows < (top + box_h)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + box_w)[:, None])
    box = in_rows[:, :, None] & in_cols[:, None, :] & erase[:, None, None]
    return images.masked_fill(box[:, None], 0)


# --- op kernels: torchvision's functional ops with one magnitude per sample ------------------


def _per_sample(values: torch.Tensor) -> torch.Tensor:
    """(n,) values as float32 shaped (n, 1, 1, 1) to broadcast over images."""
    return values.float().view(-1, 1, 1, 1)


def _inverse_affine(
    angle: torch.Tensor,
    translate: tuple[torch.Tensor, torch.Tensor],
    shear: tuple[torch.Tensor, torch.Tensor],
    center: tuple[float, float],
) -> torch.Tensor:
    """(n, 2, 3) float32 inverse affine matrices, as torchvision's `_get_inverse_affine_matrix`."""
    rot = angle * _DEG_TO_RAD
    shear_x = shear[0] * _DEG_TO_RAD
    shear_y = shear[1] * _DEG_TO_RAD
    cx, cy = center
    cx_plus_tx = cx + translate[0]
    cy_plus_ty = cy + translate[1]
    cos_sy = torch.cos(shear_y)
    tan_sx = torch.tan(shear_x)
    rot_minus_sy = rot - shear_y
    a = torch.cos(rot_minus_sy) / cos_sy
    b = -(a * tan_sx + torch.sin(rot))
    c = torch.sin(rot_minus_sy) / cos_sy
    d = torch.cos(rot) - c * tan_sx
    m0, m1, m3, m4 = d, -b, -c, a
    m2 = cx - m0 * cx_plus_tx - m1 * cy_plus_ty
    m5 = cy - m3 * cx_plus_tx - m4 * cy_plus_ty
    return torch.stack([m0, m1, m2, m3, m4, m5], dim=1).float().view(-1, 2, 3)


def _warp(images: torch.Tensor, theta: torch.Tensor, interpolation: str) -> torch.Tensor:
    """Resample each image through its own inverse matrix, as torchvision's affine (fill 0)."""
    n, _, h, w = images.shape
    device = images.device
    base = torch.empty(1, h, w, 3, device=device)
    base[..., 0].copy_(torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=device))
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=device)
    base[..., 1].copy_(ys.unsqueeze(-1))
    base[..., 2].fill_(1)
    scale = torch.tensor([0.5 * w, 0.5 * h], device=device)
    rescaled = theta.transpose(1, 2).div(scale)
    grid = base.view(1, h * w, 3).expand(n, -1, -1).bmm(rescaled).view(n, h, w, 2)
    warped = nnf.grid_sample(
        images.float(), grid, mode=interpolation, padding_mode="zeros", align_corners=False
    )
    return warped.round_().to(torch.uint8)


def _shear(
    images: torch.Tensor, magnitude: torch.Tensor, interpolation: str, axis: int
) -> torch.Tensor:
    """Shear by atan(magnitude) along x (axis 0) or y (axis 1) about the top-left corner."""
    _, _, h, w = images.shape
    zero = torch.zeros_like(magnitude)
    degrees = torch.atan(magnitude) * _RAD_TO_DEG
    shear = (degrees, zero) if axis == 0 else (zero, degrees)
    theta = _inverse_affine(zero, (zero, zero), shear, (-0.5 * w, -0.5 * h))
    return _warp(images, theta, interpolation)


def _translate(
    images: torch.Tensor, magnitude: torch.Tensor, interpolation: str, axis: int
) -> torch.Tensor:
    """Translate by int(magnitude) pixels along x (axis 0) or y (axis 1)."""
    zero = torch.zeros_like(magnitude)
    pixels = torch.trunc(magnitude)
    translate = (pixels, zero) if axis == 0 else (zero, pixels)
    theta = _inverse_affine(zero, translate, (zero, zero), (0.0, 0.0))
    return _warp(images, theta, interpolation)


def _shear_x(images: torch.Tensor, magnitude: torch.Tensor, interpolation: str) -> torch.Tensor:
    """torchvision's ShearX op."""
    return _shear(images, magnitude, interpolation, axis=0)


def _shear_y(images: torch.Tensor, magnitude: torch.Tensor, interpolation: str) -> torch.Tensor:
    """torchvision's ShearY op."""
    return _shear(images, magnitude, interpolation, axis=1)


def _translate_x(images: torch.Tensor, magnitude: torch.Tensor, interpolation: str) -> torch.Tensor:
    """torchvision's TranslateX op."""
    return _translate(images, magnitude, interpolation, axis=0)


def _translate_y(images: torch.Tensor, magnitude: torch.Tensor, interpolation: str) -> torch.Tensor:
    """torchvision's TranslateY op."""
    return _translate(images, magnitude, interpolation, axis=1)


def _rotate(images: torch.Tensor, magnitude: torch.Tensor, interpolation: str) -> torch.Tensor:
    """torchvision's Rotate op: counter-clockwise by `magnitude` degrees about the centre."""
    zero = torch.zeros_like(magnitude)
    angle = -torch.remainder(magnitude, 360.0)
    theta = _inverse_affine(angle, (zero, zero), (zero, zero), (0.0, 0.0))
    return _warp(images, theta, interpolation)


def _fused_add(base: torch.Tensor, other: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """float32 base + alpha * other rounded once, like the fused multiply-add in torch's `add_`.

    torchvision blends with `add_(other, alpha=...)`, a scalar alpha; here alpha is per sample. The
    float32 product is exact in float64, so going through float64 reproduces the single rounding.
    """
    return base.double().addcmul_(other.double(), _per_sample(alpha).double()).float()


def _blend(images: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """torchvision's `_blend` with one ratio per sample: ratio * images + (1 - ratio) * other."""
    scaled = images.float().mul_(_per_sample(ratio))
    blended = _fused_add(scaled, other, 1.0 - ratio)
    return blended.clamp_(0, 255).to(torch.uint8)


def _grey_floor(images: torch.Tensor) -> torch.Tensor:
    """torchvision's floored float luma of colour images (N, 1, H, W)."""
    return tvf.rgb_to_grayscale(images).float()


def _brightness(images: torch.Tensor, magnitude: torch.Tensor, interpolation: str) -> torch.Tensor:
    """torchvision's Brightness op: scale by 1 + magnitude."""
    scaled = images.float().mul_(_per_sample(1.0 + magnitude))
    return scaled.clamp_(0, 255).to(torch.uint8)


def _color(images: torch.Tensor, magnitude: torch.Tensor, interpolation: str) -> torch.Tensor:
    """torchvision's Color op (saturation 1 + magnitude); identity on grey-scale images."""
    if images.shape[1] == 1:
        return images
    return _blend(images, _grey_floor(images), 1.0 + magnitude)


def _contrast(images: torch.Tensor, magnitude: torch.Tensor, interpolation: str) -> torch.Tensor:
    """torchvision's Contrast op: blend with the mean luma by 1 + magnitude."""
    grey = _grey_floor(images) if images.shape[1] == 3 else images.float()
    return _blend(images, grey.mean(dim=(-3, -2, -1), keepdim=True), 1.0 + magnitude)


def _sharpness(images: torch.Tensor, magnitude: torch.Tensor, interpolation: str) -> torch.Tensor:
    """torchvision's Sharpness op: blend the interior with a 3x3 smoothing by 1 + magnitude."""
    _, c, h, w = images.shape
    if h <= 2 or w <= 2:
        return images
    a, b = 1.0 / 13.0, 5.0 / 13.0
    kernel = torch.tensor([[a, a, a], [a, b, a], [a, a, a]], device=images.device)
    output = images.float()
    blurred = nnf.conv2d(output, kernel.expand(c, 1, 3, 3), groups=c).round_()
    interior = output[..., 1:-1, 1:-1]
    alpha = 1.0 - (1.0 + magnitude)  # torchvision's 1 - sharpness_factor, same float64 rounding
    interior.copy_(_fused_add(interior, blurred.sub_(interior), alpha))
    return output.clamp_(0, 255).to(torch.uint8)


def _posterize(images: torch.Tensor, magnitude: torch.Tensor, interpolation: str) -> torch.Tensor:
    """torchvision's Posterize op: keep the int(magnitude) high bits."""
    keep = 256 - 2 ** (8 - magnitude.long())
    return images & keep.to(torch.uint8).view(-1, 1, 1, 1)


def _solarize(images: torch.Tensor, magnitude: torch.Tensor, interpolation: str) -> torch.Tensor:
    """torchvision's Solarize op: invert the pixels at or above 255 * magnitude."""
    threshold = _per_sample(255 * magnitude)
    return torch.where(images >= threshold, images.bitwise_not(), images)


def _autocontrast(
    images: torch.Tensor, magnitude: torch.Tensor, interpolation: str
) -> torch.Tensor:
    """torchvision's AutoContrast op."""
    return tvf.autocontrast(images)


def _equalize(images: torch.Tensor, magnitude: torch.Tensor, interpolation: str) -> torch.Tensor:
    """torchvision's Equalize op."""
    return tvf.equalize(images)


def _invert(images: torch.Tensor, magnitude: torch.Tensor, interpolation: str) -> torch.Tensor:
    """torchvision's Invert op."""
    return tvf.invert(images)


_KERNELS: dict[str, _Kernel] = {
    "ShearX": _shear_x,
    "ShearY": _shear_y,
    "TranslateX": _translate_x,
    "TranslateY": _translate_y,
    "Rotate": _rotate,
    "Brightness": _brightness,
    "Color": _color,
    "Contrast": _contrast,
    "Sharpness": _sharpness,
    "Posterize": _posterize,
    "Solarize": _solarize,
    "AutoContrast": _autocontrast,
    "Equalize": _equalize,
    "Invert": _invert,
}


def _apply_ops(
    images: torch.Tensor,
    ops: torch.Tensor,
    magnitude: torch.Tensor,
    names: tuple[str, ...],
    interpolation: str,
) -> torch.Tensor:
    """Image i gets op `names[ops[i]]` at `magnitude[i]` (ops -1 or "Identity": unchanged)."""
    counts = torch.bincount(ops + 1, minlength=len(names) + 1).tolist()
    groups = torch.argsort(ops, stable=True).split(counts)
    output = images.clone()
    for name, index in zip(("Identity", *names), groups, strict=True):
        if name != "Identity" and index.numel() > 0:
            output[index] = _KERNELS[name](images[index], magnitude[index], interpolation)
    return output


# --- op spaces: torchvision's, with the same bins -------------------------------------------


def _linear(stop: float) -> _Magnitudes:
    """Bins evenly spaced from 0 to `stop`."""
    return lambda bins, height, width: torch.linspace(0.0, stop, bins)


def _posterize_bins(top: int, span: int) -> _Magnitudes:
    """Posterize bits from `top` down by `span` over the bins, rounded."""
    return lambda bins, height, width: (
        (top - (torch.arange(bins) / ((bins - 1) / span))).round().int()
    )


def _solarize_bins(bins: int, height: int, width: int) -> torch.Tensor:
    """Solarize thresholds (fractions of 255) from 1 down to 0."""
    return torch.linspace(1.0, 0.0, bins)


def _no_magnitude(bins: int, height: int, width: int) -> None:
    """Ops without a magnitude."""
    return None


def _no_magnitude_space(*names: str) -> _OpSpace:
    """Ops without a magnitude, by name."""
    return {name: (_no_magnitude, False) for name in names}


_AUTO_AUGMENT_SPACE: _OpSpace = {
    "ShearX": (_linear(0.3), True),
    "ShearY": (_linear(0.3), True),
    "TranslateX": (
        lambda bins, height, width: torch.linspace(0.0, 150.0 / 331.0 * width, bins),
        True,
    ),
    "TranslateY": (
        lambda bins, height, width: torch.linspace(0.0, 150.0 / 331.0 * height, bins),
        True,
    ),
    "Rotate": (_linear(30.0), True),
    "Brightness": (_linear(0.9), True),
    "Color": (_linear(0.9), True),
    "Contrast": (_linear(0.9), True),
    "Sharpness": (_linear(0.9), True),
    "Posterize": (_posterize_bins(8, 4), False),
    "Solarize": (_solarize_bins, False),
    **_no_magnitude_space("AutoContrast", "Equalize", "Invert"),
}
_RAND_AUGMENT_SPACE: _OpSpace = {
    **_no_magnitude_space("Identity"),
    **{name: op for name, op in _AUTO_AUGMENT_SPACE.items() if name != "Invert"},
}
_TRIVIAL_AUGMENT_SPACE: _OpSpace = {
    **_no_magnitude_space("Identity"),
    "ShearX": (_linear(0.99), True),
    "ShearY": (_linear(0.99), True),
    "TranslateX": (_linear(32.0), True),
    "TranslateY": (_linear(32.0), True),
    "Rotate": (_linear(135.0), True),
    "Brightness": (_linear(0.99), True),
    "Color": (_linear(0.99), True),
    "Contrast": (_linear(0.99), True),
    "Sharpness": (_linear(0.99), True),
    "Posterize": (_posterize_bins(8, 6), False),
    "Solarize": (_solarize_bins, False),
    **_no_magnitude_space("AutoContrast", "Equalize"),
}
_AUGMIX_SPACE: _OpSpace = {
    "ShearX": (_linear(0.3), True),
    "ShearY": (_linear(0.3), True),
    "TranslateX": (lambda bins, height, width: torch.linspace(0.0, width / 3.0, bins), True),
    "TranslateY": (lambda bins, height, width: torch.linspace(0.0, height / 3.0, bins), True),
    "Rotate": (_linear(30.0), True),
    "Posterize": (_posterize_bins(4, 4), False),
    "Solarize": (_solarize_bins, False),
    **_no_magnitude_space("AutoContrast", "Equalize"),
    "Brightness": (_linear(0.9), True),
    "Color": (_linear(0.9), True),
    "Contrast": (_linear(0.9), True),
    "Sharpness": (_linear(0.9), True),
}

# AutoAugmentPolicy.CIFAR10: 25 sub-policies of two (op, probability, magnitude bin) steps.
_CIFAR10_POLICY: tuple[tuple[tuple[str, float, int | None], tuple[str, float, int | None]], ...] = (
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
    (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
    (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
)


@dataclass(frozen=True)
class _Table:
    """An op space's names, magnitude bins (n_ops, bins; 0 where none) and signed flags."""

    names: tuple[str, ...]
    magnitudes: torch.Tensor
    signed: torch.Tensor


def _table(space: _OpSpace, bins: int, height: int, width: int, device: torch.device) -> _Table:
    """The op space's magnitudes for images of this size, on `device`."""
    rows = [fn(bins, height, width) for fn, _ in space.values()]
    magnitudes = torch.stack(
        [torch.zeros(bins, dtype=torch.float64) if r is None else r.double() for r in rows]
    )
    signed = torch.tensor([is_signed for _, is_signed in space.values()])
    return _Table(tuple(space), magnitudes.to(device), signed.to(device))


def _signed_magnitude(
    table: _Table, ops: torch.Tensor, bins: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Each sample's magnitude for its op and bin, negated with p=0.5 for signed ops."""
    negate = _uniform(ops.shape, generator, ops.device) <= 0.5
    magnitude = table.magnitudes[ops, bins]
    return torch.where(table.signed[ops] & negate, -magnitude, magnitude)


# --- policies -------------------------------------------------------------------------------


def _rand_augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """RandAugment(num_ops=2, magnitude=9, 31 bins, nearest, fill 0), ops drawn per sample."""
    n, _, h, w = images.shape
    table = _table(_RAND_AUGMENT_SPACE, 31, h, w, images.device)
    for _ in range(2):
        ops = _integers(len(table.names), (n,), generator, images.device)
        magnitude = _signed_magnitude(table, ops, torch.full_like(ops, 9), generator)
        images = _apply_ops(images, ops, magnitude, table.names, "nearest")
    return images


def _trivial_augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """TrivialAugmentWide(31 bins, nearest, fill 0): one op and bin drawn per sample."""
    n, _, h, w = images.shape
    table = _table(_TRIVIAL_AUGMENT_SPACE, 31, h, w, images.device)
    ops = _integers(len(table.names), (n,), generator, images.device)
    bins = _integers(31, (n,), generator, images.device)
    magnitude = _signed_magnitude(table, ops, bins, generator)
    return _apply_ops(images, ops, magnitude, table.names, "nearest")


def _auto_augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """AutoAugment(CIFAR10 policy, nearest, fill 0): a sub-policy drawn per sample."""
    n, _, h, w = images.shape
    device = images.device
    table = _table(_AUTO_AUGMENT_SPACE, 10, h, w, device)
    policy = _integers(len(_CIFAR10_POLICY), (n,), generator, device)
    for step in range(2):
        steps = [sub_policy[step] for sub_policy in _CIFAR10_POLICY]
        op_of = torch.tensor([table.names.index(name) for name, _, _ in steps], device=device)
        p_of = torch.tensor([p for _, p, _ in steps], dtype=torch.float64, device=device)
        bin_of = torch.tensor([b or 0 for _, _, b in steps], device=device)
        applied = _uniform((n,), generator, device) <= p_of[policy]
        magnitude = _signed_magnitude(table, op_of[policy], bin_of[policy], generator)
        ops = torch.where(applied, op_of[policy], -1)
        images = _apply_ops(images, ops, magnitude, table.names, "nearest")
    return images


def _augmix(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """AugMix(severity 3, width 3, depth 1-3, alpha 1, all ops, bilinear), weights per sample."""
    n, _, h, w = images.shape
    device = images.device
    table = _table(_AUGMIX_SPACE, 10, h, w, device)
    width, severity, max_depth = 3, 3, 3
    original = _dirichlet_ones(n, 2, generator, device)
    chain_weights = _dirichlet_ones(n, width, generator, device) * original[:, 1:]
    mix = _per_sample(original[:, 0]) * images
    for chain in range(width):
        depth = 1 + _integers(max_depth, (n,), generator, device)
        augmented = images
        for level in range(max_depth):
            ops = _integers(len(table.names), (n,), generator, device)
            bins = _integers(severity, (n,), generator, device)
            magnitude = _signed_magnitude(table, ops, bins, generator)
            ops = torch.where(level < depth, ops, -1)
            augmented = _apply_ops(augmented, ops, magnitude, table.names, "bilinear")
        mix.add_(_per_sample(chain_weights[:, chain]) * augmented)
    return mix.to(torch.uint8)


# --- modes ----------------------------------------------------------------------------------

_EXTRA_STEPS: dict[str, _Step] = {
    "randaugment": _rand_augment,
    "trivialaugment": _trivial_augment,
    "autoaugment": _auto_augment,
    "randomerasing": _random_erasing,
    "augmix": _augmix,
}


def _check_images(images: torch.Tensor) -> None:
    """Raise ValueError unless `images` is a uint8 (N, C, H, W) batch with C = 1 or 3."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"augmentation needs a uint8 batch (N, C, H, W) with C = 1 or 3, "
            f"got {images.dtype} of shape {tuple(images.shape)}"
        )


@dataclass(frozen=True)
class _Pipeline:
    """An augmentation mode: its steps applied in order to a checked batch."""

    mode: str
    steps: tuple[_Step, ...]

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The augmented batch (the input itself when there are no steps)."""
        _check_images(images)
        for step in self.steps:
            images = step(images, generator)
        return images


def build_augment(mode: str) -> Augment:
    """The augmentation of a mode in AUG_MODES; ValueError naming the valid modes otherwise."""
    if mode not in AUG_MODES:
        raise ValueError(f"unknown augmentation mode {mode!r}; valid modes: {', '.join(AUG_MODES)}")
    if mode == "none":
        return _Pipeline(mode, ())
    extra = mode.partition("+")[2]
    return _Pipeline(mode, (_crop_flip, _EXTRA_STEPS[extra]) if extra else (_crop_flip,))
