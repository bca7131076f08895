from fer_bench.models.base import FERModule
from fer_bench.models.components.lstm import RowLSTM


class LSTMModule(FERModule):
    """A stacked (optionally bidirectional) LSTM over the face's rows."""

    family = "lstm"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        h = self.hparams
        self.net = RowLSTM(h.num_classes, h.crop_size, **h.net)
