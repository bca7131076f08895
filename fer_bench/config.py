"""Where the Hydra configs are: conf/, installed as the package fer_bench.conf."""

from __future__ import annotations

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from fer_bench.precision import fastest_precision

# ${fastest_precision:${trainer.accelerator}}: bf16-mixed where the device computes it natively
OmegaConf.register_new_resolver("fastest_precision", fastest_precision, replace=True)

CONFIG_PATH = "pkg://fer_bench.conf"  # for @hydra.main
CONFIG_MODULE = "fer_bench.conf"


def compose_config(name: str = "train", overrides: list[str] | tuple = (),
                   return_hydra_config: bool = False) -> DictConfig:
    """The config Hydra composes for `python -m fer_bench <overrides>` (no run, no output).
    Also from inside a running Hydra app (an end-of-sweep callback): that app's Hydra is set
    aside while this one composes, then restored."""
    running = GlobalHydra.instance().hydra
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            return compose(name, overrides=list(overrides),
                           return_hydra_config=return_hydra_config)
    finally:
        GlobalHydra.instance().clear()
        if running is not None:
            GlobalHydra.instance().initialize(running)
