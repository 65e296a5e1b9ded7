"""The benchmark's rate–distortion plot: bpp against PSNR-RGB and against MS-SSIM (dB)."""
from __future__ import annotations

from pathlib import Path


def rd_plot(curves: dict, anchor: str, path: Path, title: str = "") -> None:
    """Write a two-panel PNG. `curves[name]` holds lists "bpp" (bits per original
    pixel), "psnr" (dB) and "ms_ssim_db" (-10·log10(1 - MS-SSIM)), and "role";
    the anchor is drawn bold and black, jpegplus bold red, ablations dashed."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in tests
    import matplotlib.pyplot as plt

    # red and black are kept for jpegplus and the anchor
    others = iter(["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:gray",
                   "tab:olive", "tab:cyan"] * 3)
    colours = {name: next(others) for name, c in curves.items() if name != anchor and c.get("role") != "jpegplus"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    for ax, key, label in ((axes[0], "psnr", "PSNR over RGB (dB)"), (axes[1], "ms_ssim_db", "MS-SSIM (dB)")):
        for name, c in curves.items():
            style = {"marker": "o", "markersize": 3, "linewidth": 1.3, "color": colours.get(name)}
            if name == anchor:
                style.update(color="black", linewidth=2.8, marker="s", zorder=10)
            elif c.get("role") == "jpegplus":
                style.update(color="tab:red", linewidth=2.2, zorder=9)
            elif c.get("role") == "ablation":
                style.update(linestyle="--")
            ax.plot(c["bpp"], c[key], label=name, **style)
        ax.set_xlabel("bits per original pixel (whole file)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
