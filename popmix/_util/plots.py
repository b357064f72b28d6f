"""matplotlib for figures written to files: the report's, the swarm surface's, the bracket's.

matplotlib loads on first use (:func:`pyplot`), so modules that draw import without it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend: files only, no display on a cluster node."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig: Any) -> bytes:
    """The figure as PNG bytes (100 dpi); the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    pyplot().close(fig)
    return buf.getvalue()


def signed_matrix(
    ax: Any, matrix: Any, names: Sequence[str], title: str, labels: tuple[str, str]
) -> Any:
    """A square matrix of signed values on ``ax`` (blue below 0, red above, symmetric about 0),
    ``names`` on both axes, ``labels`` the (x, y) axis labels; returns the image, for a colour
    bar."""
    k = len(names)
    lim = float(np.abs(matrix).max()) or 1.0
    im = ax.imshow(matrix, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_xticks(range(k), names, rotation=90, fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title, fontsize=9)
    return im


__all__ = ["png", "pyplot", "signed_matrix"]
