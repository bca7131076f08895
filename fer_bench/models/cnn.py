from fer_bench.models.base import FERModule
from fer_bench.models.components.dcnn import DCNN


class CNNModule(FERModule):
    """The paper's DCNN, trained with cross-entropy and Adam."""

    family = "cnn"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        h = self.hparams
        self.net = DCNN(h.num_classes, h.crop_size, **h.net)
