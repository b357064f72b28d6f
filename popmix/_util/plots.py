"""matplotlib for figures written to files: the report's and the swarm surface's.

matplotlib loads on first use (:func:`pyplot`), so modules that draw import without it.
"""

from __future__ import annotations

import io
from typing import Any


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


__all__ = ["png", "pyplot"]
