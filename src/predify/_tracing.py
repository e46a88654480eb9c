"""The backbone as a traced program whose pcoder modules' outputs pass through a tap.

[`PredictiveNet`][predify.network.PredictiveNet] must replace the outputs of a few backbone modules
by
the pcoders' updated representations. Forward hooks do that, but registering and removing them
around every pass is Python work that ``torch.compile`` cannot trace (a graph break on every
call). Instead the backbone's forward is traced once with `torch.fx`, the pcoder modules
kept as leaves, and after each of them the program calls ``tap(index, output)``; the pass then
runs that program with a tap of its own. Nothing is registered on the user's model, and the
program reads every submodule, parameter and buffer from the live backbone (it shares the
backbone's module, parameter and buffer dictionaries), so ``.to()``, ``load_state_dict`` and
replaced weights are seen at once.

What a trace freezes is Python control flow: ``self.training`` read in a container's
``forward`` (stochastic depth, auxiliary heads) is baked in, so there is one program per
state of the backbone's plain attributes ([`structure_key()`][predify._tracing.structure_key]).
Backbones that fx cannot
trace (data-dependent Python branching), and calls where a user's hook sits on a module the
program does not call (the backbone itself, a container), run the backbone eagerly with
temporary hooks instead: same numbers, not compile-friendly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, fx, nn
from torch.nn.modules import module as module_globals

__all__ = [
    "StructureKey",
    "Tap",
    "TracedBackbone",
    "hooks_bypassed",
    "structure_key",
    "trace_backbone",
]

Tap = Callable[[int, Tensor], Tensor]
StructureKey = tuple[tuple[tuple[str, object], ...], ...]


def _call_tap(tap: Tap, index: int, output: Tensor) -> Tensor:
    # A module-level function, so the generated code refers to it by name.
    return tap(index, output)


class TracedBackbone:
    """The backbone's forward as an fx program ``program(tap, x)``; see the module docstring.

    Attributes:
        program: the traced ``GraphModule``; it shares the backbone's module, parameter and
            buffer dictionaries (it is not registered anywhere: it holds no state of its own).
        called_modules: the ids of the modules the program calls (its leaves) and of their
            submodules; hooks on these still fire.
    """

    def __init__(self, program: fx.GraphModule, called_modules: frozenset[int]) -> None:
        self.program = program
        self.called_modules = called_modules

    def __call__(self, tap: Tap, x: Tensor) -> Tensor:
        return self.program(tap, x)  # type: ignore[no-any-return]


_PLAIN = (bool, int, float, str, type(None))


def _plain(value: object) -> bool:
    if isinstance(value, tuple):
        return all(isinstance(item, _PLAIN) for item in value)
    return isinstance(value, _PLAIN)


def structure_key(backbone: nn.Module) -> StructureKey:
    """Per submodule (``modules()`` order), its plain attributes (bools, numbers, strings, tuples
    of them; ``training`` among them): the Python state a trace may have frozen into code.

    A backbone's forward that reads such an attribute (``self.training``, a ``drop_rate``, a
    flag) is traced again when it changes. State held in lists, dicts or other objects is not
    watched: a forward that branches on it is traced as it was when first called.
    """
    return tuple(
        tuple((name, value) for name, value in vars(module).items() if _plain(value))
        for module in backbone.modules()
    )


def hooks_bypassed(backbone: nn.Module, traced: TracedBackbone) -> bool:
    """Whether running ``traced`` would skip a hook: one on a module the program does not call,
    or a global module hook (those fire for the backbone's own call too)."""
    if (
        module_globals._global_forward_hooks
        or module_globals._global_forward_pre_hooks
        or module_globals._global_backward_hooks
        or module_globals._global_backward_pre_hooks
    ):
        return True
    for module in backbone.modules():
        if id(module) in traced.called_modules:
            continue
        if (
            module._forward_hooks
            or module._forward_pre_hooks
            or module._backward_hooks
            or module._backward_pre_hooks
        ):
            return True
    return False


class _LeafTracer(fx.Tracer):
    def __init__(self, keep: frozenset[int]) -> None:
        super().__init__()
        self._keep = keep

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return id(m) in self._keep or super().is_leaf_module(m, module_qualified_name)


def trace_backbone(backbone: nn.Module, modules: Sequence[nn.Module]) -> TracedBackbone | None:
    """Trace ``backbone`` with a tap after each of ``modules`` (bottom first); None if fx cannot.

    The trace must call each of ``modules`` exactly once, take one tensor input and leave the
    backbone as it was (fx stores unregistered tensor attributes on the traced root; a backbone
    that needs that is not traced).
    """
    index_of = {id(module): index for index, module in enumerate(modules)}
    attributes_before = set(vars(backbone))
    try:
        graph = _LeafTracer(frozenset(index_of)).trace(backbone)
    except Exception:  # any failure of symbolic tracing: use the eager path
        return None
    finally:
        # Symbolic tracing may store tensor constants on the root; the user's model keeps none.
        for name in set(vars(backbone)) - attributes_before:
            delattr(backbone, name)
    if len(set(vars(backbone)) ^ attributes_before):
        return None
    placeholders = [node for node in graph.nodes if node.op == "placeholder"]
    if len(placeholders) < 1:
        return None
    # Further parameters of forward() must have defaults: the pass calls backbone(x).
    if any(not node.args for node in placeholders[1:]):
        return None
    named = dict(backbone.named_modules(remove_duplicate=False))
    called: set[int] = set()
    taps_per_module = [0] * len(modules)
    with graph.inserting_before(placeholders[0]):
        tap = graph.placeholder("predify_tap")
    for node in list(graph.nodes):
        if node.op != "call_module":
            continue
        module = named.get(str(node.target))
        if module is None:
            return None
        # A leaf runs its own forward: hooks on it and on everything inside it still fire.
        called.update(id(inner) for inner in module.modules())
        index = index_of.get(id(module))
        if index is None:
            continue
        taps_per_module[index] += 1
        with graph.inserting_after(node):
            tapped = graph.call_function(_call_tap, (tap, index, node))
        node.replace_all_uses_with(tapped, delete_user_cb=lambda user, new=tapped: user is not new)
    if taps_per_module != [1] * len(modules):
        return None
    graph.lint()
    program = fx.GraphModule(backbone, graph, class_name=f"Traced{type(backbone).__name__}")
    # Share the live backbone's state: the program's own copies of the module hierarchy would
    # go stale when the backbone moves to another device or gets new weights.
    program.__dict__["_modules"] = backbone._modules
    program.__dict__["_parameters"] = backbone._parameters
    program.__dict__["_buffers"] = backbone._buffers
    return TracedBackbone(program, frozenset(called))
