"""Small matplotlib figures rendered to RGB arrays (the app shows them as images)."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display; never let a GUI backend start in a server
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def figure_to_array(fig) -> np.ndarray:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def schedule_plot(alphas_cumprod: np.ndarray, timesteps: list[int], marked: list[int]) -> np.ndarray:
    """ᾱ_t and log-SNR over the training timesteps; the sampled steps and snapshots marked."""
    t = np.arange(len(alphas_cumprod))
    snr = alphas_cumprod / (1 - alphas_cumprod)
    fig, left = plt.subplots(figsize=(6.4, 3.2))
    left.plot(t, alphas_cumprod, color="tab:blue", label="ᾱ_t")
    left.set_xlabel("timestep t")
    left.set_ylabel("ᾱ_t", color="tab:blue")
    right = left.twinx()
    right.plot(t, np.log10(snr), color="tab:orange", label="log₁₀ SNR")
    right.set_ylabel("log₁₀ SNR = log₁₀ ᾱ/(1−ᾱ)", color="tab:orange")
    left.scatter(timesteps, alphas_cumprod[timesteps], s=6, color="gray", zorder=3, label="sampled steps")
    for m in marked:
        left.axvline(m, color="tab:red", alpha=0.35, linewidth=1)
    left.set_title("noise schedule (red: snapshots)")
    fig.tight_layout()
    return figure_to_array(fig)


def line_plot(values: list[float], title: str, xlabel: str, ylabel: str) -> np.ndarray:
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    ax.plot(range(len(values)), values)
    ax.set_title(title), ax.set_xlabel(xlabel), ax.set_ylabel(ylabel)
    fig.tight_layout()
    return figure_to_array(fig)


def curves_plot(curves: dict[str, np.ndarray], title: str, xlabel: str, ylabel: str,
                highlight: str | None = None) -> np.ndarray:
    """Several named curves on one axis; `highlight` drawn thicker."""
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    for name, values in curves.items():
        ax.plot(np.arange(len(values)), values, label=name, linewidth=3 if name == highlight else 1.2)
    ax.set_title(title), ax.set_xlabel(xlabel), ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_to_array(fig)
