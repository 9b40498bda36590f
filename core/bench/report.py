"""Small helpers shared by the benchmark modules."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


def pct(values: Sequence[float] | npt.NDArray[np.float64], q: float) -> float | None:
    """The ``q``-th percentile, None for no values (JSON ``null``)."""
    return float(np.percentile(values, q)) if len(values) else None


def emit(results: dict[str, Any], path: Path | None) -> None:
    """Write ``results`` to ``path`` (when given) and print them as JSON."""
    text = json.dumps(results, indent=2)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(text)
