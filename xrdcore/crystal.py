"""Array-based crystal structure: the only structure type the kernels see.

A :class:`Crystal` holds plain float64/int64 arrays, ready to be handed to numba:

* ``lattice`` (3, 3) Å, lattice vectors as rows (pymatgen's convention),
* ``frac_coords`` (N, 3) fractional coordinates,
* ``atomic_numbers`` (N,) Z of each scatterer,
* ``occupancies`` (N,) site occupancy in (0, 1],
* ``b_iso`` (N,) isotropic Debye–Waller factor B in Å² (intensity factor exp(−2 B s²)
  with s = sin θ / λ, i.e. scattering-factor factor exp(−B s²)).

A partially occupied (disordered) pymatgen site becomes one entry per species at the
same position, exactly as pymatgen flattens sites before computing a pattern. There is
no physics here; the module only converts and validates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Volumes below this (Å³) are treated as a singular lattice.
MIN_CELL_VOLUME = 1e-3
#: Total occupancy of one position may exceed 1 by at most this (CIF rounding).
OCCUPANCY_TOL = 1e-6
#: Positions closer than this in fractional units count as one (disordered) site.
SAME_SITE_TOL = 1e-8
#: Largest atomic number with a known element symbol.
MAX_ATOMIC_NUMBER = 118


def element_symbol(atomic_number: int) -> str:
    """Element symbol for atomic number Z (1 … 118)."""
    from pymatgen.core.periodic_table import Element

    return Element.from_Z(int(atomic_number)).symbol


def atomic_number(species: str | int) -> int:
    """Atomic number of an element symbol ("Fe") or a Z given as int; ValueError if unknown."""
    from pymatgen.core.periodic_table import Element

    if isinstance(species, (int, np.integer)):
        z = int(species)
        if not 1 <= z <= MAX_ATOMIC_NUMBER:
            raise ValueError(f"atomic number {z} is not an element (expected 1 … {MAX_ATOMIC_NUMBER})")
        return z
    symbol = str(species).strip()
    try:
        return int(Element(symbol).Z)
    except ValueError:
        raise ValueError(
            f"unknown element {species!r}; give a symbol such as 'Fe' or 'O', or an atomic number"
        ) from None


class Crystal:
    """A periodic crystal as arrays (see the module docstring for shapes and units).

    The arrays are read-only; :meth:`replace` makes a changed copy.

    Parameters
    ----------
    lattice : (3, 3) array_like, Å, lattice vectors as rows, right-handed.
    frac_coords : (N, 3) array_like, fractional coordinates.
    species : length-N sequence of element symbols or atomic numbers.
    occupancies : (N,) array_like in (0, 1], default all 1.
    b_iso : (N,) array_like, Å², isotropic Debye–Waller B ≥ 0, default all 0.
    """

    __slots__ = ("lattice", "frac_coords", "atomic_numbers", "occupancies", "b_iso", "derived")

    def __init__(self, lattice, frac_coords, species, occupancies=None, b_iso=None):
        lattice = np.array(lattice, dtype=float)
        if lattice.shape != (3, 3):
            raise ValueError(f"lattice must be a 3x3 matrix of row vectors in Å, got shape {lattice.shape}")
        if not np.all(np.isfinite(lattice)):
            raise ValueError("lattice contains NaN or inf")
        volume = float(np.linalg.det(lattice))
        if abs(volume) < MIN_CELL_VOLUME:
            raise ValueError(f"lattice is singular (cell volume {volume:.3g} Å³)")
        if volume < 0:
            raise ValueError(
                f"lattice is left-handed (cell volume {volume:.3g} Å³ < 0); "
                "swap two lattice vectors and the matching fractional-coordinate columns"
            )
        frac_coords = np.array(frac_coords, dtype=float)
        if frac_coords.size == 0:
            raise ValueError("structure is empty: a crystal needs at least one atom")
        if frac_coords.ndim != 2 or frac_coords.shape[1] != 3:
            raise ValueError(f"frac_coords must have shape (N, 3), got {frac_coords.shape}")
        if not np.all(np.isfinite(frac_coords)):
            raise ValueError("frac_coords contain NaN or inf")
        n_atoms = len(frac_coords)
        species = list(species) if not isinstance(species, (str, int)) else [species]
        if len(species) != n_atoms:
            raise ValueError(f"got {len(species)} species for {n_atoms} positions")
        atomic_numbers = np.array([atomic_number(s) for s in species], dtype=np.int64)
        occupancies = self._per_atom(occupancies, 1.0, n_atoms, "occupancies")
        if np.any(occupancies <= 0) or np.any(occupancies > 1 + OCCUPANCY_TOL):
            raise ValueError("occupancies must lie in (0, 1]")
        b_iso = self._per_atom(b_iso, 0.0, n_atoms, "b_iso")
        if np.any(b_iso < 0):
            raise ValueError("b_iso (Debye–Waller B, Å²) must be ≥ 0")
        self.lattice = lattice
        self.frac_coords = frac_coords
        self.atomic_numbers = atomic_numbers
        self.occupancies = occupancies
        self.b_iso = b_iso
        for array in (lattice, frac_coords, atomic_numbers, occupancies, b_iso):
            array.flags.writeable = False  # a Crystal is a value: change it with replace()
        #: memo of data derived from the (read-only) arrays, filled by other modules on demand
        self.derived: dict = {}
        self._check_site_occupancy()

    @staticmethod
    def _per_atom(values, default, n_atoms, name):
        if values is None:
            return np.full(n_atoms, default)
        values = np.array(values, dtype=float).reshape(-1)
        if values.shape != (n_atoms,):
            raise ValueError(f"{name} must have one value per atom ({n_atoms}), got {values.shape[0]}")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name} contain NaN or inf")
        return values

    def _site_groups(self) -> np.ndarray:
        """Index of the crystallographic site each entry belongs to (entries at one position share it)."""
        wrapped = np.round(self.frac_coords % 1.0, 8) % 1.0
        _, site_of_entry = np.unique(wrapped, axis=0, return_inverse=True)
        return site_of_entry.reshape(-1)

    def _check_site_occupancy(self):
        if np.all(self.occupancies == 1.0) and len(self) == len(np.unique(self._site_groups())):
            return
        totals = np.bincount(self._site_groups(), weights=self.occupancies)
        if np.any(totals > 1 + OCCUPANCY_TOL):
            raise ValueError(
                f"total occupancy of a site is {totals.max():.4g} > 1; "
                "atoms at the same position must share it (partial occupancies summing to ≤ 1)"
            )

    # ----------------------------------------------------------------- properties
    def __len__(self) -> int:
        return len(self.frac_coords)

    @property
    def volume(self) -> float:
        """Cell volume in Å³."""
        return float(np.linalg.det(self.lattice))

    @property
    def species(self) -> list[str]:
        """Element symbol of every entry."""
        return [element_symbol(z) for z in self.atomic_numbers]

    @property
    def cart_coords(self) -> np.ndarray:
        """(N, 3) Cartesian coordinates in Å."""
        return self.frac_coords @ self.lattice

    def replace(self, **changes) -> Crystal:
        """A new Crystal with some arrays replaced (e.g. ``lattice=...``), validated again."""
        fields = dict(
            lattice=self.lattice,
            frac_coords=self.frac_coords,
            species=self.atomic_numbers,
            occupancies=self.occupancies,
            b_iso=self.b_iso,
        )
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"unknown Crystal field(s) {sorted(unknown)}; choose from {sorted(fields)}")
        fields.update(changes)
        return Crystal(**fields)

    def __repr__(self) -> str:
        formula = "".join(f"{el}{n if n > 1 else ''}" for el, n in _counts(self.species))
        abc = np.linalg.norm(self.lattice, axis=1)
        return f"Crystal({formula}, {len(self)} atoms, a,b,c = {abc[0]:.4f}, {abc[1]:.4f}, {abc[2]:.4f} Å)"

    # ----------------------------------------------------------------- conversion
    @classmethod
    def from_pymatgen(cls, structure) -> Crystal:
        """From a pymatgen ``Structure``; a disordered site gives one entry per species.

        A site property ``b_iso`` (Å²), if present, is read as the Debye–Waller factor.
        A left-handed pymatgen lattice (negative volume) is made right-handed by swapping
        the first two lattice vectors and the matching fractional coordinates: the same
        atoms at the same Cartesian positions, with h and k exchanged in Miller indices.
        """
        if len(structure) == 0:
            raise ValueError("structure is empty: a crystal needs at least one atom")
        b_site = structure.site_properties.get("b_iso", [0.0] * len(structure))
        frac, species, occupancies, b_iso = [], [], [], []
        for site, b in zip(structure, b_site):
            for sp, occu in site.species.items():
                symbol = getattr(sp, "symbol", None)
                if symbol is None or getattr(sp, "Z", 0) < 1:
                    raise ValueError(f"species {sp!s} is not a chemical element (dummy species cannot scatter)")
                frac.append(site.frac_coords)
                species.append(symbol)
                occupancies.append(occu)
                b_iso.append(0.0 if b is None else b)
        lattice, frac = structure.lattice.matrix, np.array(frac, dtype=float)
        if np.linalg.det(lattice) < 0:
            lattice, frac = lattice[[1, 0, 2]], frac[:, [1, 0, 2]]
        return cls(lattice, frac, species, occupancies, b_iso)

    def to_pymatgen(self):
        """A pymatgen ``Structure``; entries at one position become one disordered site."""
        from pymatgen.core import Lattice, Structure

        groups = self._site_groups()
        _, first_entry = np.unique(groups, return_index=True)
        order = np.sort(first_entry)
        species, coords, b_site = [], [], []
        for first in order:
            members = np.flatnonzero(groups == groups[first])
            species.append({element_symbol(self.atomic_numbers[m]): float(self.occupancies[m]) for m in members})
            coords.append(self.frac_coords[first])
            b_site.append(float(self.b_iso[first]))
        return Structure(Lattice(self.lattice), species, coords, site_properties={"b_iso": b_site})

    @classmethod
    def from_cif(cls, path) -> Crystal:
        """Read the first structure of a CIF file (through pymatgen's parser)."""
        import warnings

        from pymatgen.io.cif import CifParser

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"CIF file {str(path)!r} does not exist")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                structures = CifParser(path).parse_structures(primitive=False)
        except Exception as error:
            raise ValueError(f"could not read a crystal structure from CIF {str(path)!r}: {error}") from error
        if not structures:
            raise ValueError(f"CIF {str(path)!r} holds no structure")
        return cls.from_pymatgen(structures[0])

    def to_cif(self, path) -> None:
        """Write a CIF file (through pymatgen's writer)."""
        from pymatgen.io.cif import CifWriter

        CifWriter(self.to_pymatgen()).write_file(str(path))


def _counts(symbols):
    seen: dict[str, int] = {}
    for symbol in symbols:
        seen[symbol] = seen.get(symbol, 0) + 1
    return seen.items()
