"""The retrieval study as data: a validated configuration with its presets
(:mod:`~xrdcore.study.config`), the resumable runner that writes one row per task
(:mod:`~xrdcore.study.runner`), rates with intervals from the written tables
(:mod:`~xrdcore.study.summary`), searches that run many optimisations outside the grid
(:mod:`~xrdcore.study.search`) and the command line (:mod:`~xrdcore.study.cli`).
"""

from xrdcore.study.config import (PAPER, REMEDIES, REMEDIES_ENERGY, SHIPPED, SMALL, WORKSHOP,
                                  StudyConfig)
from xrdcore.study.runner import ResumeWarning, read_rows, run_study
from xrdcore.study.summary import (binned_rates, match_rates, rate_where, repair_rate,
                                   wilson_interval)

__all__ = [
    "PAPER", "REMEDIES", "REMEDIES_ENERGY", "SHIPPED", "SMALL", "WORKSHOP", "ResumeWarning",
    "StudyConfig", "binned_rates", "match_rates", "rate_where", "read_rows", "repair_rate",
    "run_study", "wilson_interval"
]
