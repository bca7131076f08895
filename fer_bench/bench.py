"""Training and evaluation speed of every registered family, against this machine's limit.

    python -m fer_bench.bench                       # every family, torch's default threads
    python -m fer_bench.bench --threads 1           # one core, as each job of a 2-job sweep
    python -m fer_bench.bench --models cnn --batches 40
    python -m fer_bench.bench --models cnn --experiment fer2013_cnn20 --batch 100

For each family as configured (conf/family/ + conf/train.yaml's model options):
- bare: forward + backward + optimiser step of the network alone on random batches, eager and
  with each speed option (channels_last, torch.compile, bfloat16 autocast; compile seconds
  counted apart);
- harness: the real path, `fer_bench.train.build` (datamodule, per-batch augmentation) and a
  Lightning fit with the progress bar and CSV logger of a real run, timed over training batches;
  once with the configured options, once eager, once under trainer.precision=bf16-mixed, and
  (for the first family) with the per-batch rotation off and with progress bar and logging off,
  to price each;
- eval: single-view and ten-view probabilities of 48x48 faces, under no_grad and inference_mode;
- augment: the per-batch augmentation alone, with and without its rotation (grid_sample);
- flops_per_image (FlopCounterMode, forward + backward), GFLOP/s and the fraction of the matmul
  peak of the row's precision (a 2048x2048 matmul in fp32, and in bf16, measured in the same run).
Rows go to experiments/bench/<cpu>_<threads>t_torch<version>_b<batch>[_<experiment>].csv (one
file per set of conditions, replaced when re-measured); experiments/bench/README.md explains
the columns.
"""

from __future__ import annotations

import argparse
import csv
import logging
import re
import statistics
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from fer_bench import provenance
from fer_bench.config import compose_config
from fer_bench.models import family_names
from fer_bench.models.gan import GANModule
from fer_bench.precision import bf16_instructions, native_bf16
from fer_bench.train import build, build_model

FULL_PRECISION = "32-true"
STEP_KEYS = ("discriminator_weight_grads",)  # options of the bare step, not of the model
# name -> model overrides and trainer.precision (always set: an experiment may choose bf16)
BARE_OPTIONS = {
    "eager": {"channels_last": False, "compile": False, "precision": FULL_PRECISION},
    "channels_last": {"channels_last": True, "compile": False, "precision": FULL_PRECISION},
    "compile": {"channels_last": False, "compile": True, "precision": FULL_PRECISION},
    "channels_last+compile": {"channels_last": True, "compile": True,
                              "precision": FULL_PRECISION},
    "channels_last+bf16": {"channels_last": True, "compile": False, "precision": "bf16-mixed"},
}
# --experiment: each family as that experiment configures it (its tuned network, precision),
# on synthetic faces (the bench times steps, not data) and without its learning-rate schedule
# (a plateau schedule needs the validation the bench leaves out; a schedule costs nothing)
EXPERIMENT_OVERRIDES: list[str] = []
FER2013 = {"train": 28709, "val": 3589}  # faces per split: prices validation frequency
OUT_DIR = Path("experiments/bench")


@dataclass
class Row:
    family: str
    path: str  # bare | harness | eval | augment | peak
    options: str
    images_per_s: float
    flops_per_image: float = 0.0
    gflops: float = 0.0
    peak_fraction: float = 0.0
    speedup_vs_bare_eager: float = 0.0
    compile_seconds: float = 0.0
    notes: str = ""


def matmul_peak(n: int = 2048, repeats: int = 12,
                dtype: torch.dtype = torch.float32) -> tuple[float, float]:
    """GFLOP/s of an n x n matmul at these threads: (median repeat, fastest repeat). The
    median is the peak the fractions use, the same statistic as the training rates (medians of
    steps); the fastest shows what the cores reach between a shared machine's slow spells."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9, 2 * n**3 / min(times) / 1e9


def compose(family: str, options: dict | None = None, extra: list[str] | None = None):
    overrides = [f"+model={family}", "threads=default", *EXPERIMENT_OVERRIDES, *(extra or [])]
    overrides += [f"model.{k}={str(v).lower()}" if k != "precision" else f"trainer.precision={v}"
                  for k, v in (options or {}).items()]
    return compose_config("train", overrides)


def experiment_overrides(experiment: str | None) -> list[str]:
    return [f"experiment={experiment}", "data=synthetic", "~model/scheduler"] if experiment else []


def autocast(options: dict):
    """The context a Lightning trainer at the options' precision computes a step in."""
    bf16 = options.get("precision", FULL_PRECISION) == "bf16-mixed"
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)


def without_step_keys(options: dict) -> dict:
    return {k: v for k, v in options.items() if k not in STEP_KEYS}


def module_for(family: str, options: dict | None = None) -> pl.LightningModule:
    cfg = compose(family, options)
    return build_model(cfg, [f"c{i}" for i in range(7)], crop_size=44, image_size=48,
                       normalization="none")


def training_step(module: pl.LightningModule, discriminator_weight_grads: bool = False):
    """One bare step of the module's networks (no Lightning): what its training_step computes.
    discriminator_weight_grads: the GAN's generator step also differentiates the discriminator's
    weights, as it did before 2026-12-05 (the ablation row that prices freezing them)."""
    if isinstance(module, GANModule):
        opt_d = torch.optim.Adam(module.net.parameters())
        opt_g = torch.optim.Adam(module.generator.parameters())

        def step(x, y):
            fake = module.generator(torch.randn(len(x), module.generator.z_dim))
            logits_real, feat_real = module.net(module.layout(x))
            logits_fake, _ = module.net(module.layout(fake.detach()))
            loss_d = F.cross_entropy(logits_real, y) + logits_fake.logsumexp(1).mean()
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            module.net.requires_grad_(discriminator_weight_grads)
            _, feat_gen = module.net(module.layout(fake))
            loss_g = F.mse_loss(feat_gen.mean(0), feat_real.detach().mean(0))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            module.net.requires_grad_(True)
        return step

    opt = torch.optim.Adam(module.net.parameters())

    def step(x, y):
        opt.zero_grad()
        F.cross_entropy(module.logits(x), y).backward()
        opt.step()
    return step


def flops_per_image(family: str, batch: int) -> float:
    module = module_for(family, BARE_OPTIONS["eager"]).train()
    x, y = torch.randn(batch, 1, 44, 44), torch.randint(0, 7, (batch,))
    counter = FlopCounterMode(display=False)
    recurrent: list[float] = []  # the counter skips the fused LSTM kernels: count them here
    hooks = [m.register_forward_hook(lambda m, i, o: recurrent.append(lstm_flops(m, i[0])))
             for m in module.modules() if isinstance(m, torch.nn.LSTM)]
    with counter:
        training_step(module)(x, y)
    for h in hooks:
        h.remove()
    return (counter.get_total_flops() + 3 * sum(recurrent)) / batch  # backward = 2 x forward


def lstm_flops(lstm: torch.nn.LSTM, x: torch.Tensor) -> float:
    """Forward FLOPs of an LSTM: per step, layer and direction, four gates' matrix products
    (input and hidden), 2 FLOPs per multiply-add."""
    batch, steps = (x.shape[0], x.shape[1]) if lstm.batch_first else (x.shape[1], x.shape[0])
    directions = 2 if lstm.bidirectional else 1
    total, inputs = 0.0, lstm.input_size
    for _ in range(lstm.num_layers):
        total += directions * steps * batch * 2 * 4 * lstm.hidden_size * (
            inputs + lstm.hidden_size)
        inputs = lstm.hidden_size * directions
    return total


def bare(family: str, options: dict[str, dict], batch: int, batches: int,
         warmup: int) -> dict[str, tuple[float, float]]:
    """{option name: (images/s from the median step, seconds of the first step beyond a
    median one: compile)}. The options' steps alternate, so a slow spell of a shared machine
    slows them alike and their ratios hold."""
    torch.manual_seed(0)
    steps = {name: training_step(module_for(family, without_step_keys(opts)).train(),
                                 **{k: opts[k] for k in STEP_KEYS if k in opts})
             for name, opts in options.items()}
    x, y = torch.randn(batch, 1, 44, 44), torch.randint(0, 7, (batch,))
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(warmup + batches):
        for name, step in steps.items():
            t0 = time.perf_counter()
            with autocast(options[name]):
                step(x, y)
            times[name].append(time.perf_counter() - t0)
    out = {}
    for name, t in times.items():
        median = statistics.median(t[warmup:])
        out[name] = (batch / median, max(0.0, t[0] - median))
    return out


class _BatchTimer(pl.Callback):
    """Seconds between the ends of consecutive training batches: everything a batch costs
    (loading, transfer, augmentation, step, logging, progress bar)."""

    def __init__(self):
        self.times: list[float] = []
        self.last = 0.0

    def on_train_start(self, trainer, module):
        self.last = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now


def harness(family: str, options: dict, batch: int, batches: int, warmup: int,
            rotation: bool = True, chatter: bool = True) -> tuple[float, float]:
    """(images/s from the median batch, first batch beyond a median one) through build() +
    a Lightning fit."""
    # One epoch of exactly warmup + batches batches (max_steps would count the GAN's two
    # optimiser steps per batch).
    extra = [f"data.batch_size={batch}", f"data.synthetic_sizes.train={(warmup + batches) * batch}"]
    if not rotation:
        extra.append("data.augment.max_rotation=0")
    cfg = compose(family, options, extra)
    pl.seed_everything(0, verbose=False)
    dm, module = build(cfg)
    timer = _BatchTimer()
    callbacks = [timer]
    with tempfile.TemporaryDirectory() as tmp:
        if chatter:  # what a real run shows and writes
            callbacks.append(pl.callbacks.TQDMProgressBar(cfg.callbacks.progress_bar.refresh_rate))
            logger = pl.loggers.CSVLogger(tmp, name="csv")
        else:
            logger = False
        trainer = pl.Trainer(
            accelerator=cfg.trainer.accelerator, precision=cfg.trainer.precision, devices=1,
            max_epochs=1,
            limit_val_batches=0, num_sanity_val_steps=0, enable_checkpointing=False,
            enable_model_summary=False, enable_progress_bar=chatter, logger=logger,
            log_every_n_steps=cfg.trainer.log_every_n_steps, callbacks=callbacks,
            default_root_dir=tmp)
        trainer.fit(module, datamodule=dm)
    median = statistics.median(timer.times[warmup:])
    return batch / median, max(0.0, timer.times[0] - median)


def evaluation(family: str, options: dict, batch: int, tta: bool, inference: bool) -> float:
    module = module_for(family, options).eval()
    faces = torch.randn(500, 1, 48, 48)
    guard = torch.inference_mode if inference else torch.no_grad
    with guard(), autocast(options):
        module.probabilities(faces[:batch], tta=tta)  # warm-up
        t0 = time.perf_counter()
        for i in range(0, len(faces), batch):
            module.probabilities(faces[i : i + batch], tta=tta)
    return len(faces) / (time.perf_counter() - t0)


def augmentation(batch: int, rotation: bool, repeats: int = 200) -> float:
    """Images/s of the per-batch training augmentation alone (random crop and mirror, with or
    without the random rotation's grid_sample): its share of a training step, free of the
    step's noise."""
    from fer_bench.data.views import random_views

    faces = torch.randn(batch, 1, 48, 48)
    random_views(faces, 44, max_rotation=10.0 if rotation else 0.0)
    t0 = time.perf_counter()
    for _ in range(repeats):
        random_views(faces, 44, max_rotation=10.0 if rotation else 0.0)
    return repeats * batch / (time.perf_counter() - t0)


def configured_options(family: str) -> dict:
    cfg = compose(family)
    return {"channels_last": bool(cfg.model.channels_last), "compile": bool(cfg.model.compile),
            "precision": cfg.trainer.precision}


def label(options: dict) -> str:
    on = [k for k, v in options.items() if v is True]
    if options.get("precision", FULL_PRECISION) != FULL_PRECISION:
        on.append(options["precision"])
    return "+".join(on) or "eager"


def bench_family(family: str, args, peaks: dict[str, float], ablations: bool) -> list[Row]:
    flops = flops_per_image(family, args.batch)
    configured = configured_options(family)
    options = {name: o for name, o in BARE_OPTIONS.items()
               if not (o["compile"] and args.no_compile)}
    if family == "gan":  # what freezing the discriminator in the generator's step saves
        options["channels_last, D weight grads in G step"] = (
            BARE_OPTIONS["channels_last"] | {"discriminator_weight_grads": True})
    measures = {}  # (path, options name) -> () -> (images/s, compile seconds)
    runs = [(f"configured ({label(configured)})", configured, {})]
    if configured != BARE_OPTIONS["eager"]:
        runs.append(("eager", BARE_OPTIONS["eager"], {}))
    if configured["precision"] == FULL_PRECISION:
        runs.append(("configured + bf16-mixed", configured | {"precision": "bf16-mixed"}, {}))
    if ablations:
        runs += [("configured, no rotation", configured, {"rotation": False}),
                 ("configured, no progress/logging", configured, {"chatter": False})]
    precision = {("bare", name): o["precision"] for name, o in options.items()}
    for name, opts, kw in runs:
        precision["harness", name] = opts["precision"]
        measures["harness", name] = partial(harness, family, opts, args.batch, args.batches,
                                            args.warmup, **kw)
    # Bare options side by side, step by step; harness rows in interleaved rounds, the best of
    # each kept: a shared machine's slow spells hit one round, not the comparison.
    best: dict[tuple, tuple[float, float]] = {
        ("bare", name): v for name, v in
        bare(family, options, args.batch, args.batches, args.warmup).items()}
    for _ in range(args.rounds):
        for key, measure in measures.items():
            rate, compile_s = measure()
            old = best.get(key, (0.0, compile_s))
            best[key] = (max(old[0], rate), old[1])
    rows: list[Row] = []
    for (path, name), (rate, compile_s) in best.items():
        peak = peaks["fp32" if precision[path, name] == FULL_PRECISION else "bf16"]
        row = Row(family, path, name, round(rate, 1), round(flops),
                  round(rate * flops / 1e9, 2), round(rate * flops / 1e9 / peak, 3),
                  compile_seconds=round(compile_s, 1) if "compile" in name else 0.0)
        rows.append(row)
        print(f"  {family:7s} {path:8s} {name:34s} {rate:8.1f} img/s  "
              f"{row.gflops:6.1f} GFLOP/s  {100 * row.peak_fraction:5.1f}% of peak"
              + (f"  compile {row.compile_seconds:.0f} s" if row.compile_seconds else ""),
              flush=True)
    for tta in (False, True):
        for inference in (False, True):
            rate = evaluation(family, configured, args.batch, tta, inference)
            name = f"{'ten views' if tta else 'single view'}, " \
                   f"{'inference_mode' if inference else 'no_grad'}"
            rows.append(Row(family, "eval", name, round(rate, 1)))
            print(f"  {family:7s} eval     {name:34s} {rate:8.1f} img/s", flush=True)
    eager = next(r.images_per_s for r in rows if r.path == "bare" and r.options == "eager")
    for r in rows:
        if r.path in ("bare", "harness"):
            r.speedup_vs_bare_eager = round(r.images_per_s / eager, 3)
    return rows


def validation_share(rows: list[Row], family: str) -> str:
    """The share of a FER2013 epoch spent validating, at one and four checks an epoch."""
    train = next(r.images_per_s for r in rows
                 if r.family == family and r.path == "harness" and r.options.startswith("conf"))
    val = next(r.images_per_s for r in rows
               if r.family == family and r.path == "eval" and r.options.startswith("single"))
    t_train = FER2013["train"] / train
    shares = [n * FER2013["val"] / val / (t_train + n * FER2013["val"] / val) for n in (1, 4)]
    return f"validation share of a FER2013 epoch: {100 * shares[0]:.1f}% at one check, " \
           f"{100 * shares[1]:.1f}% at four"


def file_name(threads: int, batch: int, extra: str = "") -> str:
    cpu = re.sub(r"[^a-z0-9]+", "-", provenance.cpu_model().lower()).strip("-")
    if bf16_instructions() and not native_bf16("cpu"):
        # two Xeons here report one model name, one with AMX: their bf16 rows differ x4
        cpu += "-no-amx"
    torch_version = torch.__version__.split("+")[0]
    return f"{cpu}_{threads}t_torch{torch_version}_b{batch}{extra}.csv"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None, help="families (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: "
                        "torch's, the number of cores)")
    parser.add_argument("--interop-threads", type=int, default=None)
    parser.add_argument("--batch", type=int, default=50, help="the paper's 50")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per row "
                        "(images/s from the median batch: robust to a noisy machine)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repeats; best kept")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile rows")
    parser.add_argument("--experiment", default=None, help="measure each family as this "
                        "experiment configures it (conf/experiment/<name>.yaml)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    EXPERIMENT_OVERRIDES[:] = experiment_overrides(args.experiment)
    if args.threads:
        torch.set_num_threads(args.threads)
    # Compile seconds as a fresh machine (CI, a cluster node) pays them, not from a warm cache
    import torch._inductor.config as inductor

    inductor.force_disable_caches = True
    if args.interop_threads:
        torch.set_num_interop_threads(args.interop_threads)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    models = args.models or family_names()
    threads = torch.get_num_threads()
    t_start = time.perf_counter()
    peaks, rows = {}, []
    # a CPU without bfloat16 instructions emulates it at ~1 GFLOP/s: a smaller product, same measure
    bf16_n = 2048 if bf16_instructions() else 512
    for name, dtype, n in (("fp32", torch.float32, 2048), ("bf16", torch.bfloat16, bf16_n)):
        peak, fastest = matmul_peak(n, dtype=dtype)
        peaks[name] = peak
        print(f"{provenance.cpu_model()}, {threads} threads, torch {torch.__version__}, batch "
              f"{args.batch}, 44x44 crops; {name} matmul peak {peak:.1f} GFLOP/s (median; "
              f"fastest repeat {fastest:.1f})", flush=True)
        rows += [Row("-", "peak", f"matmul {n}x{n} {name}, median", 0.0,
                     gflops=round(peak, 2), peak_fraction=1.0),
                 Row("-", "peak", f"matmul {n}x{n} {name}, fastest", 0.0,
                     gflops=round(fastest, 2), peak_fraction=round(fastest / peak, 3))]
    for rotation in (True, False):
        name = f"crop + mirror{' + rotation' if rotation else ''}"
        rate = augmentation(args.batch, rotation)
        rows.append(Row("-", "augment", name, round(rate, 1)))
        print(f"  {'-':7s} augment  {name:34s} {rate:8.1f} img/s", flush=True)
    notes = []
    for i, family in enumerate(models):
        rows += bench_family(family, args, peaks, ablations=i == 0)
        notes.append(f"{family}: {validation_share(rows, family)}")
        print("  " + notes[-1], flush=True)
    seconds = time.perf_counter() - t_start
    extra = "" if args.interop_threads is None else f"_interop{args.interop_threads}"
    extra += f"_{args.experiment}" if args.experiment else ""
    out = args.out / file_name(threads, args.batch, extra)
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = list(asdict(rows[0]))
    with open(out, "w", newline="") as fh:
        fh.write(f"# python -m fer_bench.bench {' '.join(argv or [])}".rstrip() + "\n")
        git = provenance.git_state()
        fh.write(f"# {provenance.cpu_model()}; {threads} threads; torch {torch.__version__}; "
                 f"commit {git['commit']}{' (dirty)' if git['dirty'] else ''}; "
                 f"{seconds:.0f} s in all\n")
        for note in notes:
            fh.write(f"# {note}\n")
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    print(f"{len(rows)} rows in {seconds:.0f} s -> {out}")
    return out


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
