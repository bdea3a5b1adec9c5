"""Structure retrieval by optimisation: the optimisers (:mod:`~xrdcore.optimize.core`: Adam,
gradient descent, L-BFGS on any parametrisation and metric), the remedies for a rough landscape
(:mod:`~xrdcore.optimize.remedies`: continuation in peak width, an energy term, multi-start and
basin hopping) and many descents at once on the batched engine (:mod:`~xrdcore.optimize.batch`).
"""

from xrdcore.optimize.core import METHODS, OptimizationResult, Trajectory, default_steps, optimize
from xrdcore.optimize.remedies import (BasinHopping, CombinedGradient, Continuation,
                                       broaden_pattern, broadening_kernel_fwhm,
                                       combined_loss_and_grad, split_budget, width_schedule)

__all__ = [
    "METHODS", "BasinHopping", "CombinedGradient", "Continuation", "OptimizationResult",
    "Trajectory", "broaden_pattern", "broadening_kernel_fwhm", "combined_loss_and_grad",
    "default_steps", "optimize", "split_budget", "width_schedule"
]
