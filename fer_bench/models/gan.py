"""Semi-supervised GAN: the discriminator is the classifier (K expressions + "fake")."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fer_bench.models.base import FERModule, build, plain


class GANModule(FERModule):
    """`net` is the discriminator (K + 1 logits), `generator` the DCGAN generator; each has its
    optimizer (`optimizer`, `optimizer_g`), and `scheduler`, if set, schedules both."""

    learns_from_unlabelled = True  # its real/fake loss uses every training face
    training_only = ("generator",)  # the discriminator alone classifies

    def __init__(self, *args, generator: dict, optimizer_g: dict,
                 unsupervised_weight: float = 1.0, feature_matching: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.save_hyperparameters({"generator": plain(generator), "optimizer_g": plain(optimizer_g),
                                   "unsupervised_weight": unsupervised_weight,
                                   "feature_matching": feature_matching})
        self.generator = self.speed_up(build(generator, output_size=self.hparams.crop_size))
        self.automatic_optimization = False

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.layout(x))[0][:, : self.hparams.num_classes]

    @staticmethod
    def _log_p_real(logits: torch.Tensor) -> torch.Tensor:
        """log P(not fake) = logsumexp over the K real classes - logsumexp over all K + 1."""
        return torch.logsumexp(logits[:, :-1], 1) - torch.logsumexp(logits, 1)

    def training_step(self, batch, batch_idx):
        # Below 100% labels: every face for real/fake, a batch of labelled faces to classify
        # (data.labeled_fraction); else one batch, every face labelled.
        (x, y), labelled = (batch["faces"], batch["labelled"]) if isinstance(batch, dict) else (
            batch, None)
        opt_d, opt_g = self.optimizers()
        z = torch.randn(x.shape[0], self.generator.z_dim, device=x.device)

        # Discriminator: classify real faces, tell real from generated.
        fake = self.generator(z)
        logits_real, feat_real = self.net(self.layout(x))
        logits_fake, _ = self.net(self.layout(fake.detach()))
        # class ids or soft targets (FER+)
        loss_sup = (self.supervised_loss(logits_real, y) if labelled is None else
                    self.supervised_loss(self.net(self.layout(labelled[0]))[0], labelled[1]))
        log_fake_is_fake = F.log_softmax(logits_fake, 1)[:, -1]
        loss_unsup = -self._log_p_real(logits_real).mean() - log_fake_is_fake.mean()
        loss_d = loss_sup + self.hparams.unsupervised_weight * loss_unsup
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()

        # Generator: match the discriminator's features of real faces, or fool it. The
        # discriminator's weights are frozen meanwhile: their gradients here would be discarded
        # (zeroed before its next step) and cost ~12% of a step (experiments/bench/).
        self.toggle_optimizer(opt_g)
        logits_gen, feat_gen = self.net(self.layout(fake))
        if self.hparams.feature_matching:
            loss_g = F.mse_loss(feat_gen.mean(0), feat_real.detach().mean(0))
        else:
            loss_g = -self._log_p_real(logits_gen).mean()
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        self.log_dict({"train/loss": loss_sup, "train/loss_d": loss_d, "train/loss_g": loss_g},
                      prog_bar=True, on_step=False, on_epoch=True, sync_dist=True,
                      batch_size=len(x))  # two streams a step: Lightning cannot tell which

    def configure_optimizers(self):
        h = self.hparams
        opt_d, sched_d = self.optimizer_with_schedule(h.optimizer, self.net.parameters())
        opt_g, sched_g = self.optimizer_with_schedule(h.optimizer_g, self.generator.parameters())
        if sched_d is None:
            return [opt_d, opt_g]
        # Manual optimisation: Lightning keeps and checkpoints them; on_train_epoch_end steps.
        return [opt_d, opt_g], [sched_d["scheduler"], sched_g["scheduler"]]

    def on_train_epoch_end(self):
        # Once an epoch, as Lightning steps the other families' schedules.
        schedulers = self.lr_schedulers() or []
        for sched in schedulers if isinstance(schedulers, list) else [schedulers]:
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                score = self.trainer.callback_metrics.get("val/acc")
                if score is not None:
                    sched.step(float(score))
            else:
                sched.step()
