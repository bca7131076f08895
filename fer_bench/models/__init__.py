from fer_bench.models.cnn import CNNModule
from fer_bench.models.gan import GANModule
from fer_bench.models.lstm import LSTMModule

# Checkpoints name their family; predict builds only these classes (nothing is imported by name).
FAMILIES = {"cnn": CNNModule, "gan": GANModule, "lstm": LSTMModule}

__all__ = ["FAMILIES", "CNNModule", "GANModule", "LSTMModule"]
