"""Which axis of a layer's output holds its channels, read from what the network does rather than from shapes.

Pooling over positions (pooled invariance, the probes' 2 x 2 grid or class token) must know which axes of a map
are positions. Most networks make 4-D maps [N, C, H, W]; some (Swin, and any network that moves channels last
before a LayerNorm or Linear layer) make [N, H, W, C]. 3-D outputs are tokens [N, T, C] in a transformer, but
[N, C, L] in a Conv1d stack, a patch embedding flattened before its transpose or a token-mixing branch. Averaging
the wrong axes silently gives wrong read-outs, so each read layer's channel axis is decided from the graph's
operations, each by its own meaning:

- the image is [N, C, H, W]; a convolution, batch/group/instance norm or pooling (1-D or 2-D) makes channels
  axis 1 (a BatchNorm1d's input is [N, C] or [N, C, L]: axis 1 either way);
- a LayerNorm or Linear layer (module or function) works over the last axis: its output has channels last,
  unless its input's channels are known to be elsewhere (an MLP-Mixer's token mixing: a Linear over the
  positions of [N, C, T]), where they stay;
- a permute or transpose moves the channel axis with it;
- element-wise operations, activations, dropouts, identities, padding, rolling, plain slicing keep it;
- a reshape (a Flatten or Unflatten module included) keeps it where it keeps the sizes of every axis up to and
  including the channel axis (leading channels: [N, C, L] -> [N, C, H, W]) or from it on (trailing channels:
  [N, L, C] -> [N, H, W, C]), since a row-major reshape then indexes the same channel at the same place;
- both inputs of a residual addition hold the same layout, so a branch made by operations of unknown meaning
  (a window reversal) takes the layout of what it is added to.

Anything else (a module of unknown meaning, a reshape that mixes channels with space) leaves the channel axis
unknown; a 3-D or 4-D layer whose channel axis is unknown is reported as such, never pooled over guessed axes. The
ranks and sizes these rules need come from one forward pass of one image (torch.fx's ShapeProp).
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

# Modules and functions whose output has channels at axis 1, whatever its rank (a batch/instance norm or pooling
# of [N, C] or [N, C, L] included)
_CHANNELS_FIRST_MODULES = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.LocalResponseNorm,
)
_CHANNELS_FIRST_FUNCTIONS = {
    F.conv1d,
    F.conv2d,
    F.conv_transpose1d,
    F.conv_transpose2d,
    F.batch_norm,
    F.group_norm,
    F.instance_norm,
    F.max_pool1d,
    F.max_pool2d,
    F.avg_pool1d,
    F.avg_pool2d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_max_pool1d,
    F.adaptive_max_pool2d,
    torch.conv1d,
    torch.conv2d,
    torch.batch_norm,
}
_LAST_AXIS_MODULES = (nn.LayerNorm, nn.Linear)
_LAST_AXIS_FUNCTIONS = {F.layer_norm, F.linear, torch.layer_norm}
_KEEPING_MODULES = (
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.ReLU,
    nn.ReLU6,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.LeakyReLU,
    nn.ELU,
    nn.Mish,
    nn.Tanh,
    nn.PReLU,
    nn.Softplus,
)
_KEEPING_FUNCTIONS = {
    operator.add,
    operator.iadd,
    operator.sub,
    operator.mul,
    operator.imul,
    operator.truediv,
    operator.neg,
    torch.add,
    torch.sub,
    torch.mul,
    torch.div,
    torch.roll,
    torch.sigmoid,
    torch.tanh,
    torch.relu,
    F.relu,
    F.relu6,
    F.gelu,
    F.silu,
    F.hardswish,
    F.hardsigmoid,
    F.sigmoid,
    F.leaky_relu,
    F.elu,
    F.mish,
    F.dropout,
    F.pad,
}
_KEEPING_METHODS = {
    "add",
    "add_",
    "sub",
    "mul",
    "mul_",
    "div",
    "div_",
    "contiguous",
    "clone",
    "float",
    "half",
    "bfloat16",
    "to",
    "type_as",
    "sigmoid",
    "relu",
    "relu_",
    "tanh",
    "clamp",
    "roll",
}
_ADDS = {operator.add, operator.iadd, torch.add, "add", "add_"}


def channel_axes(graph_module: fx.GraphModule, nodes: list[fx.Node], example: torch.Tensor) -> list[int | None]:
    """Per node of `nodes`: the axis of its output that holds channels, or None where it cannot be known (a
    non-tensor output included). `example` is one normalised image batch the network accepts."""
    ShapeProp(graph_module).propagate(example)
    axis: dict[fx.Node, int | None] = {}
    graph_nodes = list(graph_module.graph.nodes)
    for _ in range(4):  # forward, then back through residual additions, until nothing changes
        before = dict(axis)
        for node in graph_nodes:
            if axis.get(node) is None:
                axis[node] = _forward(graph_module, node, axis)
        for node in reversed(graph_nodes):
            _backward(graph_module, node, axis)
        if axis == before:
            break
    return [axis.get(node) if _rank(node) is not None else None for node in nodes]


def _rank(node: fx.Node) -> int | None:
    meta = node.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return len(shape) if shape is not None else None


def _shape(node: fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return tuple(shape) if shape is not None else None


def _inputs(node: fx.Node) -> list[fx.Node]:
    """The tensor inputs of a node (positional, and inside list or tuple arguments)."""
    found: list[fx.Node] = []
    for arg in node.args:
        items = arg if isinstance(arg, list | tuple) else [arg]
        found += [a for a in items if isinstance(a, fx.Node) and _rank(a) is not None]
    return found


def _module(graph_module: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    if node.op != "call_module":
        return None
    try:
        return graph_module.get_submodule(node.target)
    except AttributeError:
        return None


def _keeps(graph_module: fx.GraphModule, node: fx.Node) -> bool:
    """Whether the node leaves every axis where it was (element-wise, padding, rolling, plain slicing)."""
    module = _module(graph_module, node)
    if module is not None:
        return type(module) in _KEEPING_MODULES
    if node.op == "call_function":
        if node.target is operator.getitem:
            index = node.args[1]
            items = index if isinstance(index, tuple) else (index,)
            source = node.args[0]
            return (
                isinstance(source, fx.Node) and _rank(source) is not None and all(isinstance(i, slice) for i in items)
            )
        return node.target in _KEEPING_FUNCTIONS
    return node.op == "call_method" and node.target in _KEEPING_METHODS


def _forward(graph_module: fx.GraphModule, node: fx.Node, axis: dict[fx.Node, int | None]) -> int | None:
    """The channel axis of a node's output from its operation and its inputs' channel axes."""
    rank = _rank(node)
    if rank is None:
        return None
    if node.op == "placeholder":
        return 1 if rank == 4 else None
    module = _module(graph_module, node)
    if isinstance(module, _CHANNELS_FIRST_MODULES) or (
        node.op == "call_function" and node.target in _CHANNELS_FIRST_FUNCTIONS
    ):
        return 1
    if type(module) in _LAST_AXIS_MODULES or (node.op == "call_function" and node.target in _LAST_AXIS_FUNCTIONS):
        if _normalises_several_axes(module):
            return None
        source = next(iter(_inputs(node)), None)
        known = axis.get(source) if source is not None and _rank(source) == rank else None
        return known if known is not None and known != rank - 1 else rank - 1  # positions mixed: channels stay
    inputs = _inputs(node)
    if not inputs:
        return None
    source = inputs[0]
    known = axis.get(source)
    if _keeps(graph_module, node):
        axes = {axis.get(a) for a in inputs if _rank(a) == rank} - {None}
        return axes.pop() if len(axes) == 1 and _rank(source) == rank else None
    if known is None:
        return None
    if isinstance(module, nn.Flatten | nn.Unflatten):
        return _reshaped(_shape(source), _shape(node), known)
    if node.op in ("call_method", "call_function") and _name(node) == "permute":
        dims = _dims(node)
        return dims.index(known) if dims is not None and known in dims else None
    if node.op in ("call_method", "call_function") and _name(node) in ("transpose", "swapaxes"):
        pair = [d % _rank(source) for d in node.args[1:3] if isinstance(d, int)]
        if len(pair) != 2:
            return None
        return pair[1] if known == pair[0] else pair[0] if known == pair[1] else known
    if node.op in ("call_method", "call_function") and _name(node) in ("reshape", "view", "flatten", "unflatten"):
        return _reshaped(_shape(source), _shape(node), known)
    return None


def _normalises_several_axes(module: nn.Module | None) -> bool:
    """A LayerNorm over more than the last axis: its output's channel axis is not the last one alone."""
    return isinstance(module, nn.LayerNorm) and len(module.normalized_shape) != 1


def _name(node: fx.Node) -> str:
    return node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")


def _dims(node: fx.Node) -> list[int] | None:
    """The dims of a permute call (`x.permute(0, 2, 3, 1)`, `torch.permute(x, [0, 2, 3, 1])` or `dims=`)."""
    args = node.kwargs.get("dims", node.args[1:])
    if len(args) == 1 and isinstance(args[0], list | tuple):
        args = args[0]
    if not args or not all(isinstance(d, int) for d in args):
        return None
    return [d % len(args) for d in args]


def _reshaped(before: tuple[int, ...] | None, after: tuple[int, ...] | None, known: int) -> int | None:
    """The channel axis after a row-major reshape, where the reshape keeps it in place: every axis size up to and
    including the channel axis kept (leading channels), or every axis size from it to the end kept (trailing)."""
    if before is None or after is None:
        return None
    if len(after) > known and before[: known + 1] == after[: known + 1]:
        return known
    tail = len(before) - known
    if len(after) >= tail and before[known:] == after[len(after) - tail :]:
        return len(after) - tail
    return None


def _backward(graph_module: fx.GraphModule, node: fx.Node, axis: dict[fx.Node, int | None]) -> None:
    """Both inputs of a residual addition share its layout; an axis-keeping operation's input shares its output's."""
    known = axis.get(node)
    if known is None:
        return
    target = node.target if node.op in ("call_function", "call_method") else None
    inputs = _inputs(node)
    if target in _ADDS and len(inputs) == 2 and _shape(inputs[0]) == _shape(inputs[1]) == _shape(node):
        for operand in inputs:
            if axis.get(operand) is None:
                axis[operand] = known
    elif _keeps(graph_module, node) and len(inputs) == 1 and _shape(inputs[0]) == _shape(node):
        if axis.get(inputs[0]) is None:
            axis[inputs[0]] = known


def hooked_channel_axis(module: nn.Module, rank: int) -> int | None:
    """The channel axis of a module's output of `rank` axes where its kind says it (for networks read through
    hooks): a declared output format of that rank ('NCHW' / 'NHWC' / 'NCL' / 'NLC', as timm's modules carry; a
    format of another rank says nothing: timm's flattening patch embedding declares 'NCHW' and makes [N, L, C]),
    a convolution or batch/instance norm or pooling (axis 1, 1-D and 2-D alike), a LayerNorm or Linear layer (the
    last axis); else None."""
    declared = str(getattr(module, "output_fmt", "") or "").upper().rsplit(".", 1)[-1]
    if declared in ("NCHW", "NHWC", "NCL", "NLC") and len(declared) == rank:
        return declared.index("C")
    if isinstance(module, _CHANNELS_FIRST_MODULES):
        return 1
    if type(module) in _LAST_AXIS_MODULES:
        return None if _normalises_several_axes(module) else rank - 1
    return None


def to_channels_first(features: torch.Tensor, channel_axis: int) -> torch.Tensor:
    """A 4-D map with channels at `channel_axis` as [N, C, *spatial] (the other axes in their order)."""
    if channel_axis == 1:
        return features
    order = [0, channel_axis] + [d for d in range(1, features.dim()) if d != channel_axis]
    return features.permute(order)


def to_tokens(features: torch.Tensor, channel_axis: int) -> torch.Tensor:
    """A 3-D output with channels at `channel_axis` (1 or 2) as tokens [N, T, C]: [N, C, L] transposed to
    [N, L, C], tokens as they are."""
    return features.transpose(1, 2) if channel_axis == 1 else features
