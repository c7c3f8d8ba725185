"""Models: every architecture on grey and colour uint8 input; inference graph rewrites."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from medunlearn.config import ConfigError, ModelConfig
from medunlearn.models import (
    ARCHITECTURES,
    Normalize,
    build_model,
    inference_model,
)


def _config(arch: str) -> ModelConfig:
    return ModelConfig(arch=arch, width=4)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize(("channels", "n_classes", "size"), [(1, 2, 28), (3, 8, 28), (3, 7, 64)])
def test_logits_shape(arch, channels, n_classes, size):
    torch.manual_seed(0)
    model = build_model(_config(arch), channels, n_classes).eval()
    images = torch.randint(0, 256, (3, channels, size, size), dtype=torch.uint8)
    with torch.no_grad():
        logits = model(images)
    assert logits.shape == (3, n_classes)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


def test_normalize_maps_uint8_and_floats_alike():
    pixels = torch.tensor([[0, 128, 255]], dtype=torch.uint8)
    out = Normalize()(pixels)
    assert torch.allclose(out, torch.tensor([[-1.0, 128 / 255 * 2 - 1, 1.0]]), atol=1e-6)
    assert torch.equal(Normalize()(pixels.float() / 255), out)
    assert pixels.tolist() == [[0, 128, 255]]  # the input is not changed in place


def test_cnn_width_sets_the_size():
    small = build_model(ModelConfig(arch="cnn", width=4), 3, 8)
    wide = build_model(ModelConfig(arch="cnn", width=8), 3, 8)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(small) < count(wide)


def test_unknown_architecture():
    with pytest.raises(
        ConfigError, match=r"arch must be one of \['resnet18', 'resnet18-small', 'cnn'\]; got 'vgg'"
    ):
        ModelConfig(arch="vgg")


def _with_running_stats(model: nn.Module, channels: int, size: int) -> nn.Module:
    """The model after a few training-mode passes, so batch norm is not the identity."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randint(0, 256, (8, channels, size, size), dtype=torch.uint8))
    return model.eval()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_inference_model_folds_batch_norm_and_keeps_the_logits(arch):
    torch.manual_seed(0)
    model = _with_running_stats(build_model(_config(arch), 3, 5), 3, 32)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    with torch.inference_mode():
        expected = model(images)
        folded = inference_model(model)
        logits = folded(images)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert torch.allclose(logits, expected, rtol=1e-4, atol=1e-4)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


onednn = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN"
)


def _conversions(graph: nn.Module) -> list[str]:
    """The layout conversions a oneDNN graph makes, in order."""
    return [n.target for n in graph.graph.nodes if n.target in ("to_mkldnn", "to_dense")]


@onednn
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_onednn_layout_keeps_the_logits_of_every_architecture(arch):
    torch.manual_seed(0)
    model = _with_running_stats(build_model(_config(arch), 3, 5), 3, 32)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    with torch.inference_mode():
        expected = model(images)
        graph = inference_model(model, onednn=True)
        logits = graph(images)
    assert torch.allclose(logits, expected, rtol=1e-4, atol=1e-4)
    assert logits.layout == torch.strided
    # one region: from the first conv (after Normalize) to the head's flatten
    assert _conversions(graph) == ["to_mkldnn", "to_dense"]


class _Mixed(nn.Module):
    """Convs next to ops oneDNN tensors do not take: each must get dense inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.reflect = nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect")
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.dilated = nn.MaxPool2d(2, dilation=2)
        self.conv3 = nn.Conv2d(4, 4, 1)
        self.pool = nn.AdaptiveAvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.conv1(x))
        b = self.conv2(torch.sigmoid(a)) + 1.0
        c = self.conv3(self.dilated(self.reflect(a) + b))
        return self.pool(c + a.mean()).flatten(1)


class _ReadAfterInPlace(nn.Module):
    """An in-place ReLU whose input another op reads after it: it must see the change."""

    def __init__(self, relu: nn.Module) -> None:
        super().__init__()
        self.conv1, self.conv2, self.relu = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 1), relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1(x)
        b = self.relu(a)
        return (self.conv2(b) + torch.sigmoid(a)).flatten(1)


class _Broadcast(nn.Module):
    """A sum of a feature map and its pooled (N, C, 1, 1) mean: oneDNN's sum does not broadcast."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.pool = nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.conv(x))
        return (a + self.pool(a)).flatten(1)


class _FunctionalRelu(nn.Module):
    """Convs around `F.relu`, which fx records with an `inplace` option."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x))).flatten(1)


class _WriteInto(nn.Module):
    """A conv output written into by an op outside any region (`out=`, an aten overload)."""

    def __init__(self, write) -> None:
        super().__init__()
        self.conv1, self.conv2, self.write = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 3), write

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1(x)
        self.write(a)
        return self.conv2(a).flatten(1)


class _KeywordIdentity(nn.Module):
    """An identity called with a keyword argument, between two convs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.same, self.conv2 = nn.Conv2d(3, 4, 3), nn.Identity(), nn.Conv2d(4, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.same(input=self.conv1(x))).flatten(1)


class _SamePadding(nn.Module):
    """A conv with padding='same' and an even kernel, which oneDNN does not take."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 4, padding="same"), nn.Conv2d(4, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)).flatten(1)


@onednn
@pytest.mark.parametrize(
    ("make", "conversions"),
    [
        (_Mixed, ["to_mkldnn", "to_dense", "to_mkldnn", "to_dense", "to_mkldnn", "to_dense"]),
        (lambda: _ReadAfterInPlace(nn.ReLU(inplace=True)), []),
        (lambda: _ReadAfterInPlace(nn.LeakyReLU(0.1, inplace=True)), []),
        (lambda: _ReadAfterInPlace(nn.ReLU()), ["to_mkldnn", "to_dense", "to_dense"]),
        (_Broadcast, ["to_mkldnn", "to_dense"]),
        (_FunctionalRelu, ["to_mkldnn", "to_dense"]),
        (_SamePadding, ["to_mkldnn", "to_dense"]),
        (lambda: _WriteInto(lambda a: torch.clamp(a * 2.0, min=0, out=a)), []),
        (lambda: _WriteInto(lambda a: torch.ops.aten.add_.Tensor(a, a)), []),
        (_KeywordIdentity, ["to_mkldnn", "to_dense", "to_mkldnn", "to_dense"]),
    ],
    ids=[
        "mixed",
        "in-place-relu",
        "in-place-leaky",
        "relu",
        "broadcast",
        "f-relu",
        "same-pad",
        "out",
        "aten-add_",
        "keyword-identity",
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_onednn_layout_keeps_the_logits_of_graphs_it_cannot_run_whole(make, conversions):
    """Ops outside oneDNN get dense inputs; in-place ops a copy would hide keep a graph dense."""
    torch.manual_seed(0)
    model = make().eval()
    images = torch.rand(2, 3, 12, 12)
    with torch.inference_mode():
        expected = model(images)
        graph = inference_model(model, onednn=True)
        logits = graph(images)
    assert torch.allclose(logits, expected, rtol=1e-5, atol=1e-6)
    assert _conversions(graph) == conversions


class _Branchy(nn.Module):
    """Control flow on a tensor's value: fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.norm = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x)) if x.sum() > 0 else x


class _AssignsItems(_Branchy):
    """Item assignment: fx cannot trace it either."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.conv(x))
        y[:, 0] = 0.0
        return y


@pytest.mark.parametrize("make", [_Branchy, _AssignsItems])
def test_a_model_that_cannot_be_traced_is_used_as_it_is(make):
    model = make()
    assert inference_model(model) is model
    assert not model.training


def test_a_conv_called_before_two_norms_is_not_folded():
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.norm1, self.norm2 = (
                nn.Conv2d(3, 4, 3),
                nn.BatchNorm2d(4),
                nn.BatchNorm2d(4),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.norm1(self.conv(x)) + self.norm2(self.conv(x))

    torch.manual_seed(0)
    model = Shared()
    for norm in (model.norm1, model.norm2):
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
    images = torch.rand(2, 3, 8, 8)
    with torch.inference_mode():
        expected = model.eval()(images)
        logits = inference_model(model)(images)
    assert torch.allclose(logits, expected, rtol=1e-5, atol=1e-6)


def test_cnn_pools_before_its_relu_with_the_values_and_gradients_of_pooling_after():
    torch.manual_seed(0)
    model = build_model(_config("cnn"), 3, 4)
    layers = list(model[1])
    swapped = list(layers)
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.MaxPool2d):  # the reference order: ReLU, then pool
            swapped[i], swapped[i + 1] = nn.ReLU(), layer
    reference = nn.Sequential(model[0], nn.Sequential(*swapped))
    images = torch.randint(0, 256, (5, 3, 28, 28), dtype=torch.uint8)
    outputs, grads = [], []
    for net in (model, reference):
        net.zero_grad()
        out = net(images)
        out.square().sum().backward()
        outputs.append(out.detach())
        grads.append([p.grad.clone() for p in net.parameters()])
    assert torch.equal(outputs[0], outputs[1])
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))
    # the parameters keep the indices of earlier checkpoints
    assert [k for k in model.state_dict() if k.endswith("weight")] == [
        "1.0.weight", "1.1.weight", "1.4.weight", "1.5.weight", "1.8.weight", "1.9.weight",
        "1.12.weight", "1.13.weight", "1.17.weight",
    ]  # fmt: skip
