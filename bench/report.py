"""What every benchmark shares: run one variant in a fresh process (its own peak memory), and the
RATIO lines that `python -m bench` gathers into its summary table."""
from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys


def ratio(bench: str, what: str, value: float, meaning: str) -> None:
    """One summary row: `value` is ours ÷ the baseline (below 1: ours is cheaper)."""
    print("RATIO " + json.dumps({"bench": bench, "what": what, "ratio": round(float(value), 4), "meaning": meaning}),
          flush=True)


def isolated(script: str, *args: str) -> dict:
    """Run `script --variant …` in a fresh Python; its last stdout line is a JSON dict."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_mib(device: str) -> float:
    """This process's peak since `reset_peak`: CUDA memory allocated, or resident set size (VmHWM) on the CPU."""
    import torch
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak(device: str) -> None:
    """Start the peak afresh (so building a model does not count): CUDA's counter, or Linux's VmHWM."""
    import gc

    import torch
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def current_mib(device: str) -> float:
    import torch
    if device == "cuda":
        return torch.cuda.memory_allocated() / 2**20
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@contextlib.contextmanager
def cheap_random_init(seed: int = 0):
    """Random weights without torch's single-threaded RNG: while building SD1.5-sized modules,
    `uniform_`/`normal_` copy a tiled pool of random numbers (12 s → < 1 s for one UNet here).
    The benchmarks measure shapes and costs, so tiled weights of the right scale are enough."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    uniform_pool = torch.rand(1 << 20, generator=generator)
    normal_pool = torch.randn(1 << 20, generator=generator)
    original = torch.Tensor.uniform_, torch.Tensor.normal_

    def tile(tensor, pool):
        with torch.no_grad():
            flat = tensor.view(-1)
            for start in range(0, flat.numel(), pool.numel()):
                chunk = flat[start:start + pool.numel()]
                chunk.copy_(pool[:chunk.numel()])
        return tensor

    def uniform_(tensor, a=0.0, b=1.0, generator=None):
        return tile(tensor, uniform_pool).mul_(b - a).add_(a)

    def normal_(tensor, mean=0.0, std=1.0, generator=None):
        return tile(tensor, normal_pool).mul_(std).add_(mean)

    torch.Tensor.uniform_, torch.Tensor.normal_ = uniform_, normal_
    try:
        yield
    finally:
        torch.Tensor.uniform_, torch.Tensor.normal_ = original
