"""Augmentation modes: contracts, per-sample randomness, reproducibility, torchvision semantics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as nnf
from torchvision.transforms import v2

from medunlearn import augment
from medunlearn.augment import AUG_MODES, build_augment

SIZES = (28, 64)
CHANNELS = (1, 3)
CHANGING_MODES = AUG_MODES[1:]
EXTRA_STEPS = {mode: augment._EXTRA_STEPS[mode.partition("+")[2]] for mode in AUG_MODES[2:]}


def _images(n: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """Smooth random shapes plus noise: every op changes them, every crop window is unique."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, channels, 7, 7, generator=generator) * 255
    smooth = nnf.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    noise = torch.rand(n, channels, size, size, generator=generator) * 40 - 20
    return (smooth + noise).clamp(0, 255).round().to(torch.uint8)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _distinct(batch: torch.Tensor) -> int:
    """How many different images a batch holds."""
    return torch.unique(batch.flatten(1), dim=0).shape[0]


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", AUG_MODES)
def test_output_contract_and_reproducibility(mode: str, size: int, channels: int) -> None:
    images = _images(6, channels, size)
    before = images.clone()
    augment_fn = build_augment(mode)
    generator = _generator(3)
    state = generator.get_state()
    out = augment_fn(images, generator)
    assert out.shape == images.shape and out.dtype == torch.uint8 and out.device == images.device
    assert torch.equal(images, before)  # the input is never modified
    assert torch.equal(out, augment_fn(images, _generator(3)))
    generator.set_state(state)  # resuming from a saved state replays the same draws
    assert torch.equal(out, augment_fn(images, generator))
    assert not torch.equal(out, augment_fn(images, _generator(4))) or mode == "none"


def test_none_returns_the_input_unchanged() -> None:
    images = _images(4, 3, 28)
    assert build_augment("none")(images, _generator()) is images


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", CHANGING_MODES)
def test_each_mode_changes_images(mode: str, size: int, channels: int) -> None:
    images = _images(16, channels, size)
    out = build_augment(mode)(images, _generator())
    changed = (out != images).flatten(1).any(dim=1)
    assert changed.float().mean() >= 0.5


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", CHANGING_MODES)
def test_identical_images_get_different_draws(mode: str, size: int, channels: int) -> None:
    same = _images(1, channels, size).expand(24, -1, -1, -1).contiguous()
    assert _distinct(build_augment(mode)(same, _generator())) >= 12
    if mode in EXTRA_STEPS:  # the step after crop-flip draws per sample too
        assert _distinct(EXTRA_STEPS[mode](same, _generator())) >= 3


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("size", SIZES)
def test_crop_flip_is_a_window_of_the_zero_padded_image(size: int, channels: int) -> None:
    images = _images(12, channels, size)
    out = build_augment("crop-flip")(images, _generator())
    assert out.shape[-2:] == (size, size)
    padded = torch.zeros(12, channels, size + 8, size + 8, dtype=torch.uint8)
    padded[:, :, 4:-4, 4:-4] = images
    for i in range(12):
        matches = [
            (top, left, flip)
            for top in range(9)
            for left in range(9)
            for flip in (False, True)
            if torch.equal(out[i], _window(padded[i], top, left, size, flip))
        ]
        assert len(matches) == 1


def _window(padded: torch.Tensor, top: int, left: int, size: int, flip: bool) -> torch.Tensor:
    """The crop at (top, left) of a padded image, mirrored left-right when `flip`."""
    window = padded[:, top : top + size, left : left + size]
    return window.flip(-1) if flip else window


def test_crop_flip_one_sample_by_hand() -> None:
    images = _images(3, 3, 28)
    out = build_augment("crop-flip")(images, _generator(7))
    replay = _generator(7)  # crop-flip draws tops, then lefts, then flip uniforms
    tops = torch.randint(9, (3,), generator=replay)
    lefts = torch.randint(9, (3,), generator=replay)
    flips = torch.rand(3, generator=replay, dtype=torch.float64) < 0.5
    top, left, flip = int(tops[1]), int(lefts[1]), bool(flips[1])
    expected = torch.zeros(3, 28, 28, dtype=torch.uint8)
    for row in range(28):
        for col in range(28):
            src_row, src_col = top + row - 4, left + (27 - col if flip else col) - 4
            if 0 <= src_row < 28 and 0 <= src_col < 28:
                expected[:, row, col] = images[1, :, src_row, src_col]
    assert torch.equal(out[1], expected)


def test_crop_flip_draws_cover_all_offsets_and_both_flips() -> None:
    images = torch.zeros(1500, 1, 28, 28, dtype=torch.uint8)
    images[:, 0, 14, 14], images[:, 0, 14, 15] = 255, 128  # two markers: offset and direction
    out = build_augment("crop-flip")(images, _generator())[:, 0].flatten(1)
    bright, dim = (out == 255).float().argmax(dim=1), (out == 128).float().argmax(dim=1)
    row, col = bright // 28, bright % 28
    flipped = dim % 28 < col
    tops = 18 - row  # the marker sits at (18, 18) of the padded image
    lefts = torch.where(flipped, col - 9, 18 - col)
    assert set(zip(tops.tolist(), lefts.tolist(), strict=True)) == {
        (top, left) for top in range(9) for left in range(9)
    }
    assert 0.45 < flipped.float().mean() < 0.55


def test_unknown_mode_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="crop-flip\\+trivialaugment"):
        build_augment("cutmix")


@pytest.mark.parametrize(
    "images",
    [torch.zeros(2, 3, 28, 28), torch.zeros(2, 2, 28, 28, dtype=torch.uint8), torch.zeros(3, 8, 8)],
)
def test_rejects_other_inputs(images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="uint8 batch"):
        build_augment("crop-flip")(images, _generator())


def _torchvision_op(image: torch.Tensor, name: str, magnitude: float, mode: str) -> torch.Tensor:
    """torchvision's own op dispatch (what its AutoAugment family applies), on one image."""
    base = v2.RandAugment()
    return base._apply_image_or_video_transform(
        image, name, magnitude, interpolation=v2.InterpolationMode(mode), fill={"others": None}
    )


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    ("space", "bins", "mode"),
    [
        (augment._TRIVIAL_AUGMENT_SPACE, 31, "nearest"),
        (augment._AUTO_AUGMENT_SPACE, 10, "nearest"),
        (augment._AUGMIX_SPACE, 10, "bilinear"),
    ],
    ids=["trivialaugment", "autoaugment", "augmix"],
)
def test_kernels_match_torchvision_pixel_for_pixel(
    space: augment._OpSpace, bins: int, mode: str, size: int, channels: int
) -> None:
    images = _images(bins, channels, size, seed=channels)
    table = augment._table(space, bins, size, size, images.device)
    signs = torch.where(torch.arange(bins) % 2 == 0, 1.0, -1.0).double()
    for index, name in enumerate(table.names):
        if name == "Identity":
            continue
        magnitude = table.magnitudes[index] * torch.where(table.signed[index], signs, 1.0)
        out = augment._KERNELS[name](images, magnitude, mode)
        for i in range(bins):
            expected = _torchvision_op(images[i], name, float(magnitude[i]), mode)
            assert torch.equal(out[i], expected), (name, float(magnitude[i]))


@pytest.mark.parametrize("size", SIZES)
def test_op_spaces_and_policy_are_torchvisions(size: int) -> None:
    pairs = [
        (augment._RAND_AUGMENT_SPACE, v2.RandAugment, 31),
        (augment._TRIVIAL_AUGMENT_SPACE, v2.TrivialAugmentWide, 31),
        (augment._AUTO_AUGMENT_SPACE, v2.AutoAugment, 10),
        (augment._AUGMIX_SPACE, v2.AugMix, 10),
    ]
    for ours, transform, bins in pairs:
        theirs = transform._AUGMENTATION_SPACE
        assert list(ours) == list(theirs)
        for name, (magnitudes, signed) in ours.items():
            their_magnitudes, their_signed = theirs[name]
            expected = their_magnitudes(bins, size, size)
            got = magnitudes(bins, size, size)
            assert signed == their_signed
            assert (got is None and expected is None) or torch.equal(got, expected)
    policy = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)._policies
    assert [tuple(sub) for sub in policy] == list(augment._CIFAR10_POLICY)


def test_color_leaves_grey_images_alone() -> None:
    grey = _images(4, 1, 28)
    magnitude = torch.full((4,), 0.5, dtype=torch.float64)
    assert torch.equal(augment._KERNELS["Color"](grey, magnitude, "nearest"), grey)


def test_random_erasing_erases_one_box_in_half_the_samples() -> None:
    white = torch.full((400, 1, 28, 28), 255, dtype=torch.uint8)
    out = augment._random_erasing(white, _generator())
    erased = out[:, 0] == 0
    has_box = erased.flatten(1).any(dim=1)
    assert 0.4 < has_box.float().mean() < 0.6
    for box in erased[has_box]:
        rows, cols = box.any(dim=1).nonzero()[:, 0], box.any(dim=0).nonzero()[:, 0]
        height, width = len(rows), len(cols)
        assert int(box.sum()) == height * width  # one filled rectangle
        assert rows[-1] - rows[0] + 1 == height and cols[-1] - cols[0] + 1 == width
        assert height < 28 and width < 28
        assert 0.02 * 784 * 0.7 <= height * width <= 0.33 * 784 * 1.3


def test_augmix_weights_are_dirichlet_rows() -> None:
    weights = augment._dirichlet_ones(2000, 3, _generator(), torch.device("cpu"))
    assert torch.allclose(weights.sum(dim=1), torch.ones(2000))
    assert (weights > 0).all()
    assert torch.allclose(weights.mean(dim=0), torch.full((3,), 1 / 3), atol=0.03)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("mode", AUG_MODES)
def test_cuda_images_stay_on_cuda(mode: str) -> None:
    images = _images(8, 3, 32).cuda()
    for generator in (_generator(), torch.Generator(device="cuda").manual_seed(0)):
        out = build_augment(mode)(images, generator)
        assert out.device == images.device and out.dtype == torch.uint8
    cuda_generator = torch.Generator(device="cuda")
    first = build_augment(mode)(images, cuda_generator.manual_seed(1))
    assert torch.equal(first, build_augment(mode)(images, cuda_generator.manual_seed(1)))
