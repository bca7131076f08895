"""Training throughput (images/s) of network configurations on this machine.

    python experiments/bench_throughput.py            # threads = torch default
    OMP_NUM_THREADS=1 python experiments/bench_throughput.py

Measures forward + backward + Adam step on random 44x44 batches of 50 (the paper's batch size),
after two warm-up steps. Ratios between rows of one run are what to compare: machines are noisy.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from fer_bench.models.components.dcnn import DCNN
from fer_bench.models.components.lstm import RowLSTM

CONFIGS = {
    "dcnn paper [96,128,256] x1": lambda: DCNN(7, 44, (96, 128, 256), 1),
    "dcnn [32,64,128] x2": lambda: DCNN(7, 44, (32, 64, 128), 2),
    "dcnn [64,128,256] x1": lambda: DCNN(7, 44, (64, 128, 256), 1),
    "dcnn [48,96,192] x2": lambda: DCNN(7, 44, (48, 96, 192), 2),
    "dcnn [32,64,128,256] x2": lambda: DCNN(7, 44, (32, 64, 128, 256), 2),
    "lstm bi 128x2": lambda: RowLSTM(7, 44, 128, 2, True),
}


def images_per_second(net: torch.nn.Module, steps: int, batch: int = 50,
                      channels_last: bool = False) -> float:
    opt = torch.optim.Adam(net.parameters())
    x, y = torch.randn(batch, 1, 44, 44), torch.randint(0, 7, (batch,))
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    for i in range(steps + 2):
        if i == 2:
            start = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--only", default="", help="substring of the configurations to run")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 50, 44x44")
    for name, make in CONFIGS.items():
        if args.only in name:
            net = make()
            params = sum(p.numel() for p in net.parameters())
            rate = images_per_second(net, args.steps)
            print(f"{name:28s} {params / 1e6:6.2f} M params {rate:8.1f} img/s")


if __name__ == "__main__":
    main()
