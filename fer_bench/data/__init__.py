from fer_bench.data.datamodule import FERDataModule
from fer_bench.data.errors import DataError

__all__ = ["DataError", "FERDataModule"]
