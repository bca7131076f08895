"""Every fully supervised family (CNN, LSTM, ResNet...): cross-entropy, one optimiser."""

from __future__ import annotations

from fer_bench.models.base import FERModule


class Classifier(FERModule):
    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.supervised_loss(self.logits(x), y)  # class ids or soft targets
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True,
                 sync_dist=True)
        return loss

    def configure_optimizers(self):
        opt, sched = self.optimizer_with_schedule(self.hparams.optimizer, self.net.parameters())
        return opt if sched is None else {"optimizer": opt, "lr_scheduler": sched}
