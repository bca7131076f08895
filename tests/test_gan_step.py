"""The semi-supervised GAN's training step: what each of its two optimiser steps differentiates."""

from __future__ import annotations

import torch


def test_the_generators_step_freezes_the_discriminator_and_only_that_step(
        compose_cfg, tmp_path, monkeypatch):
    """The discriminator's weight gradients in the generator's step would be discarded (zeroed
    before its next step): that step freezes them, and the discriminator's own step trains."""
    from fer_bench.models.gan import GANModule
    from fer_bench.train import run

    trainable, weights = [], []
    backward = GANModule.manual_backward

    def spy(self, loss, *args, **kwargs):
        trainable.append({p.requires_grad for p in self.net.parameters()})
        weights.append(self.net.out.weight.detach().clone())
        return backward(self, loss, *args, **kwargs)

    monkeypatch.setattr(GANModule, "manual_backward", spy)
    run(compose_cfg("+model=gan", "data.synthetic_sizes={train:200,val:100,test:100}",
                    "trainer.max_epochs=1", "trainer.limit_train_batches=3", "test=false",
                    "callbacks.progress_bar.refresh_rate=0"), tmp_path / "run")
    assert trainable == [{True}, {False}] * 3  # discriminator step, generator step, ...
    # the discriminator's steps change its weights; the generator's steps do not
    assert not torch.equal(weights[0], weights[1]) and torch.equal(weights[1], weights[2])


def test_freezing_the_discriminator_changes_no_weight():
    """Its gradients there were discarded: training is the same computation, bit for bit, so a
    run that began before the change continues the same trajectory."""
    from fer_bench import bench

    from .conftest import make_module

    trained, grads = [], []
    for weight_grads in (True, False):
        torch.manual_seed(0)
        module = make_module("gan").train()
        step = bench.training_step(module, discriminator_weight_grads=weight_grads)
        for _ in range(3):
            step(torch.randn(8, 1, 44, 44), torch.randint(0, 5, (8,)))
        trained.append(module.state_dict())
        grads.append(next(module.net.features.parameters()).grad.clone())
    assert all(torch.equal(trained[0][k], trained[1][k]) for k in trained[0])
    # ... though the generator's step did differentiate the discriminator in the first run
    assert not torch.equal(grads[0], grads[1])
