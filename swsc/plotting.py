"""matplotlib for the figures of `swsc report` (swsc/report.py) and `swsc tune` (swsc/pareto.py):
one fixed style and reproducible PNGs.

matplotlib is imported inside these functions, not at the module top, for a real reason: it is
an optional dependency (``pip install 'swsc[plots]'``; without it report.md is still written)
and its import costs 0.5 s or more that only a figure needs.
"""
from __future__ import annotations

DPI = 100


def available() -> bool:
    """Is matplotlib installed?"""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pyplot():
    """matplotlib.pyplot on the Agg backend with the fixed style."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": 8, "svg.hashsalt": "swsc", "path.simplify": False})
    return plt


def save_png(fig, path) -> None:
    """Write a figure as a reproducible PNG (no software tag, fixed dpi) and close it."""
    import matplotlib.pyplot as plt
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
