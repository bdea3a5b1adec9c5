"""The loss landscape: directions in structure space (:mod:`~xrdcore.landscape.directions`),
1-D and 2-D scans of a loss or an energy along them with their minima, curvature and barriers
(:mod:`~xrdcore.landscape.scans`), accidental peak overlaps (:mod:`~xrdcore.landscape.overlap`)
and how pattern similarity depends on structural distance
(:mod:`~xrdcore.landscape.dependence`).
"""

from xrdcore.landscape.directions import (Direction, atom_direction, displaced, lattice_direction,
                                          path_direction, random_direction, symmetry_axis_direction)
from xrdcore.landscape.scans import (Barrier, Scan, basin, curvature, energy_scan, local_minima,
                                     nearest_barrier, scan, scan_axes)

__all__ = [
    "Barrier", "Direction", "Scan", "atom_direction", "basin", "curvature", "displaced",
    "energy_scan", "lattice_direction", "local_minima", "nearest_barrier", "path_direction",
    "random_direction", "scan", "scan_axes", "symmetry_axis_direction"
]
