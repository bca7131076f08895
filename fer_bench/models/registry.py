"""The model registry (timm's `@register_model`): a family is a network registered by name.

    @register_model("resnet")                        # trained by the Classifier (cross-entropy)
    class ResNet(nn.Module): ...

    @register_model("gan", module="fer_bench.models.gan.GANModule")   # its own training step

Every module of `fer_bench/models/components/` is imported on first use, so a new family is a
network file here plus its two configs (`conf/family/<name>.yaml`, `conf/model/<name>.yaml`).
The sweep's default order, the report's model order, the regression gate, the network tests and
the predict loader all read `families()`.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

CLASSIFIER = "fer_bench.models.classifier.Classifier"


@dataclass(frozen=True)
class Family:
    name: str
    network: type
    module: str  # dotted path of the LightningModule that trains it

    @property
    def network_target(self) -> str:
        return f"{self.network.__module__}.{self.network.__qualname__}"

    def module_class(self) -> type:
        path, _, cls = self.module.rpartition(".")
        return getattr(importlib.import_module(path), cls)


_FAMILIES: dict[str, Family] = {}
_discovered = False


def register_model(name: str, module: str = CLASSIFIER):
    """Class decorator: register a network (nn.Module) as the family `name`."""

    def add(network: type) -> type:
        known = _FAMILIES.get(name)
        if known is not None and known.network is not network:
            raise ValueError(f"model family {name!r} is registered twice "
                             f"({known.network_target} and {network.__module__})")
        _FAMILIES[name] = Family(name, network, module)
        return network

    return add


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    import fer_bench.models.components as components

    for info in sorted(pkgutil.iter_modules(components.__path__), key=lambda m: m.name):
        importlib.import_module(f"{components.__name__}.{info.name}")
    _discovered = True


def families() -> dict[str, Family]:
    """Every registered family: those of the network files, in the files' name order, then any
    registered elsewhere, in registration order. Not simply registration order: a process that
    imported one network file before the others would list its family first."""
    _discover()
    package = "fer_bench.models.components."

    def rank(f: Family) -> tuple[bool, str]:
        inside = f.network.__module__.startswith(package)
        return (not inside, f.network.__module__ if inside else "")

    return {f.name: f for f in sorted(_FAMILIES.values(), key=rank)}  # (a stable sort)


def family(name: str) -> Family:
    found = families().get(name)
    if found is None:
        raise KeyError(f"no model family {name!r}; registered: {', '.join(families())}")
    return found


def family_names() -> list[str]:
    return list(families())
