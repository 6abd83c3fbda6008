"""Run every benchmark side by side: python -m bench ."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    ["p2p_memory.py"],  # P2P edit step vs plain step (time, peak memory), SD1.5-shaped UNet at 512²
    ["fatezero_memory.py"],  # stored attention maps: ours vs fp32-everything
    ["inversion_speed.py"],  # DDIM / negative-prompt / null-text inversion on toy-sd
]

if __name__ == "__main__":
    for script in SCRIPTS:
        print(f"\n== {' '.join(script)}", flush=True)
        subprocess.run([sys.executable, str(HERE / script[0]), *script[1:], *sys.argv[1:]], check=False)
