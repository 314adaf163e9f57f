"""PNG output with matplotlib, an optional extra (``pip install 'rollguard[plot]'``).

matplotlib is imported inside ``figure`` only; without it ``PlotUnavailableError`` says so in
one line. Plots use matplotlib's object API (no pyplot, no global state) and render to bytes;
the CLI writes the file.
"""

from __future__ import annotations

import io
from typing import Any


class PlotUnavailableError(RuntimeError):
    """matplotlib is not installed."""


def figure(*, width: float, height: float) -> Any:
    """A new matplotlib Figure with an Agg canvas attached."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 (optional)
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError as err:
        raise PlotUnavailableError("--png needs matplotlib: pip install 'rollguard[plot]'") from err
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes, without a timestamp or software tag (stable output)."""
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=90, metadata={"Software": None})
    return out.getvalue()
