"""Run every benchmark side by side and print one table of ratios: python -m bench [--write].

--write also rewrites bench/RESULTS.md with the machine, the date, the command and every table.
Ratios are ours ÷ the baseline: below 1 means ours is cheaper.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    ("p2p_memory.py", []),  # P2P edit step vs plain step (time, peak memory), SD1.5-shaped UNet at 512²
    ("fatezero_memory.py", []),  # stored attention maps: ours vs fp32-everything; FateZero vs plain step time
    ("attention_kernels.py", []),  # fused vs explicit attention at 256/512/768 px
    ("inversion_speed.py", ["--steps", "25"]),  # negative-prompt vs null-text inversion on toy-sd
    ("video_memory.py", []),  # memory per frame of the video tabs vs independent images
    ("serve_throughput.py", []),  # 8 concurrent /sampler calls on 2 vs 1 Ray Serve workers (needs Ray)
]


def machine() -> str:
    import torch
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPU cores ({cpu}), {memory:.0f} GiB, {gpu}; torch {torch.__version__}"


def main() -> None:
    write = "--write" in sys.argv
    extra = [a for a in sys.argv[1:] if a != "--write"]
    started = time.time()
    sections, ratios = [], []
    for script, args in SCRIPTS:
        command = f"python bench/{script} {' '.join(args + extra)}".strip()
        print(f"\n== {command}", flush=True)
        out = subprocess.run([sys.executable, str(HERE / script), *args, *extra], capture_output=True, text=True,
                             env={**os.environ, "PYTHONWARNINGS": "ignore"})
        lines = [line for line in out.stdout.splitlines() if not line.startswith("RATIO ")]
        ratios += [json.loads(line[6:]) for line in out.stdout.splitlines() if line.startswith("RATIO ")]
        if out.returncode != 0:
            lines.append(f"failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
        print("\n".join(lines), flush=True)
        sections.append((command, "\n".join(lines)))
    table = [f"{'benchmark':10} {'ours ÷ baseline':>15}  what", "-" * 90]
    table += [f"{r['bench']:10} {r['ratio']:15.4f}  {r['what']}" for r in ratios]
    minutes = (time.time() - started) / 60
    print("\n== summary (below 1: ours is cheaper)\n" + "\n".join(table) + f"\n\ntotal {minutes:.1f} min")
    if write:
        body = [f"# Benchmark results\n\nMachine: {machine()}.\nDate: {datetime.date.today()}. Command: "
                f"`python -m bench{' ' + ' '.join(extra) if extra else ''}` ({minutes:.1f} min).\n",
                "## Summary: ours ÷ baseline (below 1: ours is cheaper)\n\n```\n" + "\n".join(table) + "\n```\n"]
        body += [f"## `{command}`\n\n```\n{text}\n```\n" for command, text in sections]
        (HERE / "RESULTS.md").write_text("\n".join(body))


if __name__ == "__main__":
    main()
