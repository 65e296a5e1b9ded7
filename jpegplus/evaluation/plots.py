"""The benchmark's rate–distortion plot: bpp against PSNR-RGB, MS-SSIM (dB) and,
when measured, SSIMULACRA2."""
from __future__ import annotations

from pathlib import Path

PANELS = (("psnr", "PSNR over RGB (dB)"), ("ms_ssim_db", "MS-SSIM (dB)"), ("ssimulacra2", "SSIMULACRA2"))


def drawn_curves(curves: dict) -> dict:
    """The curves to draw: each extension (role "extension", low qualities kept
    apart for the tables) joined to the curve it extends, points sorted by rate."""
    out = {}
    for name, c in curves.items():
        if c.get("role") == "extension":
            continue
        parts = [c] + [e for e in curves.values() if e.get("extends") == name]
        keys = ["bpp"] + [k for k, _ in PANELS if k in c]
        points = sorted((p["bpp"][i], i, j) for j, p in enumerate(parts) for i in range(len(p["bpp"])))
        out[name] = dict(c, **{k: [parts[j][k][i] for _, i, j in points] for k in keys})
    return out


def rd_plot(curves: dict, anchor: str, path: Path, title: str = "") -> None:
    """Write a PNG with one panel per metric. `curves[name]` holds lists "bpp"
    (bits per original pixel), "psnr" (dB), "ms_ssim_db" (-10·log10(1 - MS-SSIM))
    and optionally "ssimulacra2", and "role"; the anchor is drawn bold and black,
    jpegplus bold red, ablations dashed, the yardstick (no networks, standard
    viewer) dotted; extensions are drawn as part of the curve they extend."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in tests
    import matplotlib.pyplot as plt

    curves = drawn_curves(curves)
    panels = [(k, label) for k, label in PANELS if all(k in c for c in curves.values())]
    # red and black are kept for jpegplus and the anchor
    others = iter(["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:gray",
                   "tab:olive", "tab:cyan"] * 3)
    colours = {name: next(others) for name, c in curves.items() if name != anchor and c.get("role") != "jpegplus"}
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5), constrained_layout=True)
    for ax, (key, label) in zip(axes, panels):
        for name, c in curves.items():
            style = {"marker": "o", "markersize": 3, "linewidth": 1.3, "color": colours.get(name)}
            if name == anchor:
                style.update(color="black", linewidth=2.8, marker="s", zorder=10)
            elif c.get("role") == "jpegplus":
                style.update(color="tab:red", linewidth=2.2, zorder=9)
            elif c.get("role") == "ablation":
                style.update(linestyle="--")
            elif c.get("role") == "yardstick":
                style.update(linestyle=":", linewidth=1.8)
            ax.plot(c["bpp"], c[key], label=name, **style)
        ax.set_xscale("log")  # the low-rate end matters as much as the top
        ax.set_xlabel("bits per original pixel (whole file, log scale)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
