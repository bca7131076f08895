"""Where the Hydra configs are: conf/, installed as the package fer_bench.conf."""

from __future__ import annotations

from hydra import compose, initialize_config_module
from omegaconf import DictConfig

CONFIG_PATH = "pkg://fer_bench.conf"  # for @hydra.main
CONFIG_MODULE = "fer_bench.conf"


def compose_config(name: str = "train", overrides: list[str] | tuple = ()) -> DictConfig:
    """The config Hydra composes for `python -m fer_bench <overrides>` (no run, no output)."""
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return compose(name, overrides=list(overrides))
