"""The layers the study reads, found in a network's traced graph rather than in a table per architecture.

A residual block is an addition whose one input is the block's input (or its shortcut: a projection of it) and
whose other input is the residual branch. Each is read twice, as the study reads ResNets: the branch just before
the addition, and the block output (the last operation of the module that holds the addition: after the
addition and, in post-activation blocks, the ReLU). A module that holds two additions (a transformer block:
attention, then MLP) is read at each: `blocks.3 attention branch`, `blocks.3 attention output`,
`blocks.3 mlp branch`, `blocks.3 output`. A network without residual additions (VGG, DenseNet) is read at each
stage's output (`stage2 output`: the map just before each downsampling). Around them: the `stem` (the first
block's input), a `final norm` where a norm follows the last block before pooling, `pooled` (the classifier's
input) and `logits` (the classifier's output).

The names a node gets are torchvision.models.feature_extraction's (`layer1.0.relu_1`), so the layers found are
the nodes `core.features.FeatureExtractor` reads. For the ResNets CKA Lens reads (models.resnet) the layers found
are exactly the table's, names and nodes.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torchvision.ops
from torch import fx, nn
from torchvision.models.feature_extraction import NodePathTracer

from core.errors import ContractError

_ADDS = {operator.add, operator.iadd, torch.add}
_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.LeakyReLU, nn.ELU, nn.Mish, nn.Tanh)
_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_POOL_FUNCTIONS = {"max_pool2d", "avg_pool2d", "max_pool1d", "avg_pool1d", "boolean_dispatch.<locals>.fn"}
_BRANCH_WORDS = {"attn": "attention", "attention": "attention", "self_attention": "attention", "mlp": "mlp"}

# Modules and functions every trace keeps whole (a library's own untraceable pieces, e.g. timm's; registered by
# the layer that builds such networks, so the engine names no library)
_LEAF_MODULES: set[type[nn.Module]] = set()
_AUTOWRAP_FUNCTIONS: set[Callable] = set()


def register_trace_leaves(modules: Iterable[type[nn.Module]] = (), functions: Iterable[Callable] = ()) -> None:
    """Modules and functions that every trace (here and in core.features) keeps whole instead of tracing into."""
    _LEAF_MODULES.update(modules)
    _AUTOWRAP_FUNCTIONS.update(functions)


def tracer_kwargs() -> dict:
    """The keyword arguments of torchvision's feature-extraction tracers for the registered leaves."""
    kwargs: dict = {}
    if _LEAF_MODULES:
        kwargs["leaf_modules"] = list(_LEAF_MODULES)
    if _AUTOWRAP_FUNCTIONS:
        kwargs["autowrap_functions"] = tuple(_AUTOWRAP_FUNCTIONS)
    return kwargs


class _ScopeTracer(NodePathTracer):
    """torchvision's node-naming tracer that also records the module each operation ran in."""

    def __init__(self) -> None:
        # what create_feature_extractor adds to any tracer's arguments, so that both trace the same graph: math and
        # torchvision.ops wrapped, torchvision.ops' modules kept whole
        kwargs = tracer_kwargs()
        ops = [m for m in vars(torchvision.ops).values() if isinstance(m, type) and issubclass(m, nn.Module)]
        kwargs["leaf_modules"] = list({*kwargs.get("leaf_modules", ()), *ops})
        super().__init__(autowrap_modules=(math, torchvision.ops), **kwargs)
        self.node_scope: dict[fx.Node, str] = {}

    def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None, *rest):  # noqa: ANN001, ANN201
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr)
        where = self.current_module_qualname
        if kind == "call_module":  # a module call runs in the module holding it, not in itself
            where = where.rsplit(".", 1)[0] if "." in where else ""
        self.node_scope[proxy.node] = where
        return proxy


@dataclass(frozen=True)
class _Graph:
    """A traced network: its nodes in order, their names and scopes, and the modules they call."""

    nodes: list[fx.Node]
    name: dict[fx.Node, str]
    scope: dict[fx.Node, str]
    modules: dict[str, nn.Module]

    def module(self, node: fx.Node) -> nn.Module | None:
        return self.modules.get(node.target) if node.op == "call_module" else None

    def is_pass_through(self, node: fx.Node) -> bool:
        return isinstance(self.module(node), _PASS_THROUGH)

    def inside(self, node: fx.Node, scope: str) -> bool:
        own = self.scope.get(node, "")
        return own == scope or own.startswith(scope + ".") if scope else True


def trace(module: nn.Module) -> _Graph:
    """The network's eval-mode graph with torchvision's node names (a ContractError if fx cannot trace it)."""
    tracer = _ScopeTracer()
    was_training = module.training
    module.eval()
    try:
        graph = tracer.trace(module)
    except Exception as err:  # noqa: BLE001 - any tracing failure means: this network's graph cannot be read
        raise ContractError(f"the network's graph cannot be traced ({type(err).__name__}: {err})") from err
    finally:
        module.train(was_training)
    return _Graph(list(graph.nodes), dict(tracer.node_to_qualname), tracer.node_scope, dict(module.named_modules()))


def find_layers(module: nn.Module) -> tuple[tuple[str, str], ...]:
    """(readable name, torch.fx node) of every representation the study reads of `module`, in depth order."""
    g = trace(module)
    inputs = [n for n in g.nodes if n.op == "placeholder"]
    if not inputs:
        raise ContractError("the network takes no input")
    live = _descendants(inputs[0])
    adds = [n for n in g.nodes if _is_add(n) and all(a in live for a in _tensor_args(n)) and len(_tensor_args(n)) == 2]
    blocks = [(n, *_branches(g, n)) for n in adds]
    blocks = [(n, branch, shortcut) for n, branch, shortcut in blocks if branch is not None]
    layers: list[tuple[str, fx.Node]] = []
    classifier, pooled = _head(g)
    if blocks:
        first_shortcut_input = _block_input(g, blocks[0][0], live)
        if first_shortcut_input is not None and first_shortcut_input.op != "placeholder":
            layers.append(("stem", first_shortcut_input))
        layers += _block_layers(g, blocks)
        last_output = layers[-1][1]
        final = _final_norm(g, last_output, pooled)
        if final is not None:
            layers.append(("final norm", final))
    else:
        layers += _stage_layers(g, pooled)
    if pooled is not None:
        layers.append(("pooled", pooled))
    if classifier is not None:
        layers.append(("logits", classifier))
    seen: set[fx.Node] = set()
    unique = [(name, node) for name, node in layers if not (node in seen or seen.add(node))]
    if not unique:
        raise ContractError("no layer to read was found in the network's graph")
    return tuple((name, g.name[node]) for name, node in unique)


def _tensor_args(node: fx.Node) -> list[fx.Node]:
    return [a for a in node.args if isinstance(a, fx.Node)]


def _is_add(node: fx.Node) -> bool:
    if node.op == "call_function" and node.target in _ADDS:
        return True
    return node.op == "call_method" and node.target in ("add", "add_")


def _descendants(start: fx.Node) -> set[fx.Node]:
    """Every node computed from `start` (the image): additions of parameters or buffers alone are not blocks."""
    seen, stack = {start}, [start]
    while stack:
        for user in stack.pop().users:
            if user not in seen:
                seen.add(user)
                stack.append(user)
    return seen


def _ancestors_within(g: _Graph, node: fx.Node, scope: str) -> set[fx.Node]:
    """`node` and the nodes it is computed from inside `scope` (stopping at the scope's inputs)."""
    seen, stack = set(), [node]
    while stack:
        current = stack.pop()
        if current in seen or not g.inside(current, scope) or current.op in ("placeholder", "get_attr"):
            continue
        seen.add(current)
        stack.extend(current.all_input_nodes)
    return seen


def _branches(g: _Graph, add: fx.Node) -> tuple[fx.Node | None, fx.Node | None]:
    """(residual branch, shortcut) of an addition, or (None, None) when it is no residual addition.

    The shortcut is the input the other is computed from (a transformer's second addition), else the one made by
    fewer operations inside the block (the block's input itself, or a projection of it); both inputs must come from
    the same block input, and where the two paths share a start inside the block (a pre-activation), the shortcut
    must be a projection of it: adding two separate paths' results (a feature pyramid) or two parts of one split
    (Res2Net's hierarchical sums) is no block.
    """
    scope = g.scope.get(add, "")
    first, second = _tensor_args(add)
    within = {arg: _ancestors_within(g, arg, scope) for arg in (first, second)}
    if first in within[second]:
        return second, first
    if second in within[first]:
        return first, second
    sources = [_sources(g, within[arg], arg) for arg in (first, second)]
    if not sources[0] & sources[1] or len(within[first]) == len(within[second]):
        return None, None
    branch, shortcut = (first, second) if len(within[first]) > len(within[second]) else (second, first)
    shared = within[branch] & within[shortcut]  # a pre-activation both read; a projection must then follow
    if shared and not any(n.op == "call_module" for n in within[shortcut] - shared):
        return None, None
    return branch, shortcut


def _sources(g: _Graph, inside: set[fx.Node], node: fx.Node) -> set[fx.Node]:
    """The nodes outside a block that `inside` (computed from them) reads, or `node` itself when it is outside."""
    if not inside:
        return {node}
    return {a for n in inside for a in n.all_input_nodes if a not in inside and a.op not in ("get_attr",)}


def _block_input(g: _Graph, add: fx.Node, live: set[fx.Node]) -> fx.Node | None:
    """The node the first block reads from outside it, walked back past identities and dropouts onto the activation
    they pass on (so a stem 'relu' followed by an identity max-pool is read at 'relu')."""
    scope = g.scope.get(add, "")
    inside = _ancestors_within(g, add, scope)
    outside = [a for n in inside for a in n.all_input_nodes if a not in inside and a in live]
    if not outside:
        return None
    node = min(outside, key=g.nodes.index)
    while g.is_pass_through(node) and node.all_input_nodes:  # past an identity onto the activation it passes on
        before = node.all_input_nodes[0]
        if not (g.is_pass_through(before) or isinstance(g.module(before), _ACTIVATIONS)):
            break
        node = before
    return node


def _label(g: _Graph, branch: fx.Node, shortcut: fx.Node, scope: str) -> str:
    """What a branch computes, from the child module doing most of its work: 'attention', 'mlp', or the child's
    own name."""
    nodes = _ancestors_within(g, branch, scope) - _ancestors_within(g, shortcut, scope)
    counts: dict[str, int] = {}
    for node in nodes:
        qualname = node.target if node.op == "call_module" else g.scope.get(node, "")
        rest = qualname[len(scope) + 1 :] if scope else qualname
        child = rest.split(".", 1)[0]
        if child and not child.startswith(("norm", "ln", "drop", "ls", "gamma", "layer_scale")) and "." in rest:
            counts[child] = counts.get(child, 0) + 1
    if not counts:
        return "residual"
    child = max(counts, key=lambda c: (counts[c], -min(g.nodes.index(n) for n in nodes)))
    return _BRANCH_WORDS.get(child, child)


def _block_layers(g: _Graph, blocks: list[tuple[fx.Node, fx.Node, fx.Node]]) -> list[tuple[str, fx.Node]]:
    """Per residual addition: its branch and its output, named by the module holding it."""
    by_scope: dict[str, list[tuple[fx.Node, fx.Node, fx.Node]]] = {}
    for block in blocks:
        by_scope.setdefault(g.scope.get(block[0], ""), []).append(block)
    layers: list[tuple[str, fx.Node]] = []
    for scope, adds in by_scope.items():
        base = scope or "network"
        if len(adds) == 1:
            add, branch, _ = adds[0]
            layers += [(f"{base} residual", branch), (f"{base} output", _scope_output(g, scope, add))]
            continue
        labels = [_label(g, branch, shortcut, scope) for _, branch, shortcut in adds]
        labels = [label if labels.count(label) == 1 else f"{label} {k + 1}" for k, label in enumerate(labels)]
        for k, ((add, branch, _), label) in enumerate(zip(adds, labels, strict=True)):
            last = k == len(adds) - 1
            output = _scope_output(g, scope, add) if last else add
            layers += [(f"{base} {label} branch", branch), (f"{base} {label + ' ' if not last else ''}output", output)]
    return sorted(layers, key=lambda layer: g.nodes.index(layer[1]))


def _scope_output(g: _Graph, scope: str, add: fx.Node) -> fx.Node:
    """The block's output: the last operation of the module holding the addition that is computed from it."""
    if not scope:
        return add
    after = _descendants(add)
    candidates = [n for n in g.nodes if n in after and g.inside(n, scope) and n.op != "output"]
    return candidates[-1] if candidates else add


def _head(g: _Graph) -> tuple[fx.Node | None, fx.Node | None]:
    """(classifier output, pooled features): the final linear layer the network returns and what it reads, walked
    back past dropouts and identities; a network returning pooled features has no classifier."""
    output = next((n for n in g.nodes if n.op == "output"), None)
    if output is None or not isinstance(output.args[0], fx.Node):
        return None, None
    node = output.args[0]
    classifier = None
    while g.is_pass_through(node) and node.all_input_nodes:
        node = node.all_input_nodes[0]
    head = node
    if _is_flatten(g, node) and node.all_input_nodes and _is_pointwise_conv(g, node.all_input_nodes[0]):
        head = node.all_input_nodes[0]  # a 1x1 convolution as the classifier, then flattened (timm's ResNetV2)
    if _is_linear(g, head) or head is not node:
        classifier = node
        node = head.all_input_nodes[0]
        while g.is_pass_through(node) and node.all_input_nodes:
            node = node.all_input_nodes[0]
    pooled = node if node.op != "placeholder" else None
    return classifier, pooled


def _is_pooling(g: _Graph, node: fx.Node) -> bool:
    """Whether a node pools or flattens a map globally (a flatten, an adaptive pool, a mean, a reshape)."""
    module = g.module(node)
    if isinstance(module, nn.Flatten | nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d | nn.AdaptiveAvgPool1d):
        return True
    if node.op == "call_function":
        return getattr(node.target, "__name__", "") in ("flatten", "mean", "adaptive_avg_pool2d", "adaptive_max_pool2d")
    return node.op == "call_method" and node.target in ("flatten", "mean", "view", "reshape", "squeeze")


def _final_norm(g: _Graph, last_output: fx.Node, pooled: fx.Node | None) -> fx.Node | None:
    """The last norm (and the activation right after it) between the last block and the pooling, if any."""
    if pooled is None:
        return None
    between = [
        n for n in g.nodes[g.nodes.index(last_output) + 1 : g.nodes.index(pooled)] if n in _descendants(last_output)
    ]
    norms = [n for n in between if _is_norm(g, n)]
    if not norms:
        return None
    node = norms[-1]
    while len(node.users) == 1 and isinstance(g.module(next(iter(node.users))), _ACTIVATIONS):
        node = next(iter(node.users))
    return node


def _is_linear(g: _Graph, node: fx.Node) -> bool:
    """A linear layer: an nn.Linear module, or the linear function a library's own Linear subclass calls."""
    if node.op == "call_function":
        return getattr(node.target, "__name__", "") == "linear"
    return isinstance(g.module(node), nn.Linear)


def _is_flatten(g: _Graph, node: fx.Node) -> bool:
    if node.op == "call_function":
        return getattr(node.target, "__name__", "") == "flatten"
    return isinstance(g.module(node), nn.Flatten) or (node.op == "call_method" and node.target == "flatten")


def _is_pointwise_conv(g: _Graph, node: fx.Node) -> bool:
    module = g.module(node)
    return isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1)


def _is_norm(g: _Graph, node: fx.Node) -> bool:
    """A normalisation: a norm module, or a norm function a library's own norm module calls."""
    if node.op == "call_function":
        return getattr(node.target, "__name__", "") in ("layer_norm", "batch_norm", "group_norm", "rms_norm")
    return "Norm" in type(g.module(node)).__name__


def _is_downsampling(g: _Graph, node: fx.Node) -> bool:
    module = g.module(node)
    if isinstance(module, _POOLS):
        return True
    if isinstance(module, nn.Conv2d | nn.Conv1d | nn.Conv3d):
        return any(s > 1 for s in module.stride)
    if node.op == "call_function":
        return getattr(node.target, "__name__", "") in _POOL_FUNCTIONS
    return False


def _stage_layers(g: _Graph, pooled: fx.Node | None) -> list[tuple[str, fx.Node]]:
    """A network without residual blocks, read at each stage's output: the map just before each downsampling
    (not the image itself), and the last map before the global pooling."""
    ends: list[fx.Node] = []
    for node in g.nodes:
        if _is_downsampling(g, node) and node.all_input_nodes:
            before = node.all_input_nodes[0]
            while g.is_pass_through(before) and before.all_input_nodes:
                before = before.all_input_nodes[0]
            if before.op != "placeholder" and before not in ends and not _is_downsampling(g, before):
                ends.append(before)
    if pooled is not None:
        last = _last_map(g, pooled)
        if last is not None and last not in ends and not _is_downsampling(g, last):
            ends.append(last)
    ends.sort(key=g.nodes.index)
    return [(f"stage{k} output", node) for k, node in enumerate(ends, start=1)]


def _last_map(g: _Graph, pooled: fx.Node) -> fx.Node | None:
    """The map the global pooling reads: walked back from the pooled features (through a classifier's hidden
    layers, as VGG's) to the pooling and flattening steps, and past them."""
    node, pooling = pooled, False
    for _ in range(16):
        if _is_pooling(g, node):
            pooling = True
        elif pooling:
            return node
        if not node.all_input_nodes:
            return None
        node = node.all_input_nodes[0]
    return None
