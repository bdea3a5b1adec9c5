"""xrdcore: a fast powder X-ray diffraction engine (numba) for the book "Too rough for gradient descent".

Main entry points: :class:`Crystal` (structure as arrays), :class:`Diffractometer`
(stick patterns and broadened profiles, pymatgen's conventions) and :mod:`xrdcore.datasets`
(the AFLOW prototype library shipped with pymatgen).
"""

from .crystal import Crystal
from .diffraction import Diffractometer, PeakList, Reflections

__all__ = ["Crystal", "Diffractometer", "PeakList", "Reflections"]
__version__ = "0.1.0"
