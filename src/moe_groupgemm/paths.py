"""Repository locations the book and the sweep share."""

from __future__ import annotations

import os
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]

# The book reads committed raw data from here; MOE_GROUPGEMM_DATA points it elsewhere (tests do).
DATA_ROOT = Path(os.environ.get("MOE_GROUPGEMM_DATA", REPOSITORY_ROOT / "data" / "raw"))

# Figure files written at build time, outside the HTML tree.
FIGURE_ROOT = Path(os.environ.get("MOE_GROUPGEMM_FIGURES", REPOSITORY_ROOT / "_build" / "figures"))
