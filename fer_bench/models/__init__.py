"""Lightning modules (the training step) around plain networks (`components/`), by registry."""

from fer_bench.models.registry import families, family, family_names, register_model

__all__ = ["families", "family", "family_names", "register_model"]
