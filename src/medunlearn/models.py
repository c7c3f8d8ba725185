"""Classifiers: ResNet-18 (standard or small-image stem) and a small CNN, normalising inside."""

from __future__ import annotations

import operator
import typing

import torch
import torchvision
from torch import fx, nn
from torch.fx.experimental.optimization import fuse
from torch.nn import functional as F

from medunlearn.config import Architecture, ModelConfig, UserError

ARCHITECTURES: tuple[str, ...] = typing.get_args(Architecture)


class ModelError(UserError):
    """A model that cannot be built, or weights that do not fit it."""


class Normalize(nn.Module):
    """Map uint8 pixels (or floats in [0, 1]) to the (x - 0.5) / 0.5 range the nets train on."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = images.float().div_(255) if images.dtype == torch.uint8 else images
        return (images - 0.5) / 0.5


def _resnet18(in_channels: int, n_classes: int, small_stem: bool) -> nn.Module:
    """torchvision's ResNet-18; the small-image stem (3x3 conv, stride 1, no max-pool) of the studies."""
    net = torchvision.models.resnet18(num_classes=n_classes)
    if small_stem:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net


def _conv_block(c_in: int, c_out: int, pool: bool) -> list[nn.Module]:
    """3x3 conv, batch norm, (2x2 max-pool,) ReLU.

    Max-pooling before the ReLU gives the values and gradients of pooling after it (ReLU is
    monotonic) and runs the ReLU on a quarter of the activations.
    """
    pooling = [nn.MaxPool2d(2)] if pool else []
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    return [conv, nn.BatchNorm2d(c_out), *pooling, nn.ReLU(inplace=True)]


def _small_cnn(in_channels: int, n_classes: int, width: int) -> nn.Module:
    """Four conv blocks (three halving the resolution) and a linear head: quick on a CPU."""
    return nn.Sequential(
        *_conv_block(in_channels, width, pool=True),
        *_conv_block(width, 2 * width, pool=True),
        *_conv_block(2 * width, 4 * width, pool=True),
        *_conv_block(4 * width, 8 * width, pool=False),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8 * width, n_classes),
    )


def build_model(config: ModelConfig, in_channels: int, n_classes: int) -> nn.Module:
    """A freshly initialised classifier taking uint8 (N, C, H, W) images."""
    if config.arch == "resnet18":
        net = _resnet18(in_channels, n_classes, small_stem=False)
    elif config.arch == "resnet18-small":
        net = _resnet18(in_channels, n_classes, small_stem=True)
    elif config.arch == "cnn":
        net = _small_cnn(in_channels, n_classes, config.width)
    else:
        raise ModelError(f"unknown architecture '{config.arch}'; choose one of {ARCHITECTURES}")
    return nn.Sequential(Normalize(), net)


def last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    """The dotted name and module of a model's last `nn.Linear`: the classifier head of ours
    (the small CNN's final layer, ResNet-18's `fc`), which Boundary Expanding widens."""
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ModelError(f"{type(model).__name__} has no nn.Linear layer to use as its head")
    return linears[-1]


def replace_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put `module` in place of the submodule at the dotted `name` (as `last_linear` gives it);
    torch's own `Module.set_submodule` needs torch 2.5."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, module)


class _Tracer(fx.Tracer):
    """Traces a model for inference rewrites, keeping `Normalize` (dtype-dependent) whole."""

    def is_leaf_module(self, module: nn.Module, name: str) -> bool:
        return isinstance(module, Normalize) or super().is_leaf_module(module, name)


def inference_model(model: nn.Module, onednn: bool = False) -> nn.Module:
    """The model in eval mode, with every conv -> batch-norm pair folded into one conv.

    Eval-mode batch norm is a per-channel affine map, so the folded conv gives the same logits
    up to float rounding with one pass less over each activation (about 10% faster for the
    small CNN on a CPU). With `onednn` (float32 CPU inference), conv regions also run on
    oneDNN's own tensors (`onednn_layout`). The model is not changed: the graph shares its
    other modules. A model that calls a conv or norm twice is not folded; one that cannot be
    traced (data-dependent control flow, item assignment) is returned as it is.
    """
    model.eval()
    try:
        graph = fx.GraphModule(model, _Tracer().trace(model))
    except (fx.proxy.TraceError, TypeError):  # control flow on values, item assignment
        return model
    if _calls_convs_and_norms_once(graph):
        graph = fuse(graph, inplace=True, no_trace=True)
    return onednn_layout(graph) if onednn else graph


def _calls_convs_and_norms_once(graph: fx.GraphModule) -> bool:
    """Whether folding is exact: `fuse` would fold a conv called twice into one of its norms."""
    modules = dict(graph.named_modules())
    calls = [node.target for node in graph.graph.nodes if node.op == "call_module"
             and isinstance(modules[node.target], (nn.Conv2d, nn.BatchNorm2d))]  # fmt: skip
    return len(calls) == len(set(calls))


def _runs_on_onednn(module: nn.Module) -> bool:
    """Whether a module takes oneDNN tensors as it is configured (no padding modes or string
    paddings, dilated or index-returning pools, or adaptive pools to more than one cell)."""
    if isinstance(module, nn.Conv2d):
        return module.padding_mode == "zeros" and not isinstance(module.padding, str)
    if isinstance(module, nn.MaxPool2d):
        return module.dilation in (1, (1, 1)) and not module.return_indices
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return module.output_size in (1, (1, 1))
    return isinstance(module, nn.ReLU)


def _onednn_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The sum of two oneDNN tensors; one that broadcasts (oneDNN's sum does not) adds dense."""
    if a.shape == b.shape:
        return a + b
    return (a.to_dense() + b.to_dense()).to_mkldnn()


# functions that take oneDNN tensors when all their arguments are (residual sums, ReLU)
ONEDNN_SUMS = (operator.add, torch.add)
ONEDNN_FUNCTIONS = (*ONEDNN_SUMS, torch.relu, torch.relu_, F.relu)


def _onednn_call(node: fx.Node) -> bool:
    """A call of one of ONEDNN_FUNCTIONS on graph values, with no option but `inplace`."""
    return (
        node.op == "call_function"
        and node.target in ONEDNN_FUNCTIONS
        and set(node.kwargs) <= {"inplace"}
        and all(isinstance(arg, fx.Node) for arg in node.args)
    )


# operators that write into their first argument (fx traces `x += y` as a plain add)
IN_PLACE_OPERATORS = (operator.setitem, operator.iadd, operator.isub, operator.imul)


def _mutates(node: fx.Node, module: nn.Module | None) -> bool:
    """Whether a node writes into one of its inputs (`inplace=True`, `relu_`, `out=`, `x[i] = y`)."""
    if module is not None:
        return getattr(module, "inplace", False) is True
    if node.kwargs.get("inplace") is True or "out" in node.kwargs:
        return True
    if node.target in IN_PLACE_OPERATORS:
        return True
    if isinstance(node.target, torch._ops.OpOverload):  # aten ops say so in their schema
        return node.target._schema.is_mutable
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
    return isinstance(name, str) and name.endswith("_") and not name.startswith("__")


def _drop_identities(graph: fx.GraphModule, modules: dict[str, nn.Module]) -> None:
    """Remove `nn.Identity` calls (the small stem's max-pool): they only alias their input."""
    for node in list(graph.graph.nodes):
        identity = node.op == "call_module" and isinstance(modules[node.target], nn.Identity)
        if identity and len(node.args) == 1 and not node.kwargs:
            node.replace_all_uses_with(node.args[0])
            graph.graph.erase_node(node)


def _onednn_region(nodes: fx.Graph, modules: dict[str, nn.Module]) -> set[fx.Node] | None:
    """The nodes to run on oneDNN tensors, or None where an in-place op forbids the rewrite.

    Each conv opens a region, and ops that take oneDNN tensors continue it while all their
    tensor inputs are in it. A conversion copies a value, so an in-place op is only safe on a
    value of the region that nothing else reads (the ReLUs of our models); any other would
    change a copy where the model changes the original, and the graph then stays dense.
    """
    region: set[fx.Node] = set()
    for node in nodes.nodes:
        inputs = node.all_input_nodes
        module = modules.get(node.target) if node.op == "call_module" else None
        opens = isinstance(module, nn.Conv2d) and _runs_on_onednn(module)
        continues = (
            bool(inputs)
            and all(value in region for value in inputs)
            and (_runs_on_onednn(module) if module is not None else _onednn_call(node))
        )
        if opens or continues:
            region.add(node)
        if _mutates(node, module) and not (continues and len(inputs[0].users) == 1):
            return None
    return region


def onednn_layout(graph: fx.GraphModule) -> fx.GraphModule:
    """Run the conv regions of a traced float32 model on oneDNN (mkldnn) tensors.

    oneDNN then keeps activations in its blocked layout from conv to conv instead of reordering
    them at every op: 14-28% faster inference for the small CNN and ResNet-18 at 28 px on an
    Intel Xeon, 10-19% over the folded graph on a 2-core AMD EPYC, neutral for the small-stem
    ResNet on both; `Engine.logits` runs it only where it times fastest (`medunlearn.inference`).
    Ops outside a region (`_onednn_region`) get their inputs back as dense tensors, so the
    logits are those of the dense graph up to float rounding. The graph is changed in place and
    returned.

    Kept over `torch.fx.experimental.optimization.optimize_for_inference`, which does the same:
    on an idle 2-core AMD EPYC at 28 px (`benchmarks/throughput.py`) ours is 5% faster on the
    CNN, 23% on ResNet-18 and 16% on the small stem, and builds per call in 6-44 ms against its
    27-163 ms; and the library raises or changes the logits on five of the graphs of
    `test_onednn_layout_keeps_the_logits_of_graphs_it_cannot_run_whole`.
    """
    modules = dict(graph.named_modules())
    _drop_identities(graph, modules)
    nodes = graph.graph
    region = _onednn_region(nodes, modules) or set()
    converted: dict[tuple[fx.Node, str], fx.Node] = {}
    for node in list(nodes.nodes):
        if node in region and node.target in ONEDNN_SUMS:
            node.target = _onednn_add
        for value in node.all_input_nodes:
            if (value in region) == (node in region):
                continue
            method = "to_dense" if value in region else "to_mkldnn"
            if (value, method) not in converted:
                with nodes.inserting_after(value):
                    converted[value, method] = nodes.call_method(method, (value,))
            node.replace_input_with(value, converted[value, method])
    nodes.lint()
    graph.recompile()
    return graph


def model_meta(config: ModelConfig, in_channels: int, n_classes: int) -> dict:
    """What a checkpoint records to rebuild its model and refuse mismatched ones."""
    return {"arch": config.arch, "width": config.width, "in_channels": in_channels,
            "n_classes": n_classes}  # fmt: skip


def load_weights(model: nn.Module, state: dict, meta: dict, expected: dict) -> None:
    """Load a state dict after checking the checkpoint's architecture equals the expected one."""
    recorded = {k: meta.get(k) for k in expected}
    if recorded != expected:
        raise ModelError(
            f"the checkpoint holds a model {recorded}, but {expected} was asked for: "
            "use the checkpoint's own architecture, classes and channels"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ModelError(f"the checkpoint's weights do not fit the model: {error}") from error
