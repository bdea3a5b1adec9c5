"""Space-group operations of a crystal (spglib) and the canonical bases they define.

For operations (R_g, t_g) in the lattice basis (x → R_g x + t_g) of a reference crystal:

* lattice: a symmetric Cartesian strain E (A' = A (I + E)) keeps the symmetry when
  C_g E C_gᵀ = E for the Cartesian rotations C_g = Aᵀ R_g A⁻ᵀ; equivalently the change of
  the metric ΔG = A E Aᵀ obeys R_gᵀ ΔG R_g = ΔG. That space has 1 dimension for cubic,
  2 tetragonal and hexagonal, 3 orthorhombic, 4 monoclinic, 6 triclinic (the
  crystal-family constraint).
* coordinates: a displacement field u (N, 3), fractional, keeps the symmetry when
  u_{π_g(j)} = R_g u_j, with π_g the atom permutation of operation g. The Reynolds operator
  P(u)_j = (1/|G|) Σ_g R_g⁻¹ u_{π_g(j)} projects onto those fields; a basis of its image
  gives the *symmetry axes* along which a symmetric structure can move.

**Canonical bases.** An SVD of a projector gives an orthonormal basis of its image whose
signs and, in degenerate subspaces, rotation and order depend on the LAPACK kernel of the
CPU. Here both bases are built instead from exact rational arithmetic on the integer
rotations R_g, so they are bit-identical on every CPU and BLAS, for any order of the
operations and of the atoms:

1. *Symmetry axes*, one orbit at a time: orbits in the order (atomic number, Wyckoff
   letter, representative's position), the representative being the orbit's atom with the
   smallest position in [0, 1)³. The free directions of the representative are the reduced
   row-echelon basis of the fixed space of its site-symmetry rotations (exact fractions):
   each has a pivot +1 on one coordinate x, y or z, which names the free parameter (e.g.
   ``(1, 2, 0)`` is "x" of a hexagonal 6h site). The direction is carried to the other atoms
   of the orbit by R_g, orthonormalised within the orbit by exact Gram–Schmidt, and
   normalised with one correctly rounded square root. An axis is named
   ``"<element><k> <multiplicity><letter> <parameter>"``, e.g. ``"O 6c x"`` or ``"O2 4e z"``
   (k numbers an element's orbits when it has several; Wyckoff letters and multiplicities
   are spglib's, for the standard setting; x, y, z refer to the reference's own cell).
2. *Strain basis*: the reduced row-echelon basis of the allowed ΔG in the components
   (G11, G22, G33, G23, G13, G12), named after its pivot ("a", "b", "c", "α", "β", "γ";
   a cubic cell has the single direction "a"), mapped to Cartesian strains E ∝ A⁻¹ ΔG A⁻ᵀ
   with correctly rounded sums (``math.fsum``) and orthonormalised (Frobenius) in that order.

Both are orthonormal: the axes in the Euclidean inner product of fractional displacements
(3N), the strains in the Frobenius inner product. The tests check idempotence of the
projections and the bit-identity under permuted operations, permuted atoms and another
``OPENBLAS_CORETYPE``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Any

import numpy as np
import spglib

from xrdcore.structure.crystal import Crystal
from xrdcore.validation import instance, real

#: spglib tolerance (Å) for finding the operations of a reference structure.
SYMPREC = 1e-3
#: Decimals to which positions are rounded when choosing an orbit's representative.
POSITION_DECIMALS = 8
#: The order of the metric components, and the lattice parameter each one names.
METRIC_COMPONENTS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
METRIC_NAMES = ("a", "b", "c", "α", "β", "γ")
COORDINATE_NAMES = ("x", "y", "z")


@dataclass(frozen=True)
class Symmetry:
    """Operations of ``reference``: rotations (G, 3, 3) int and translations (G, 3) in the
    lattice basis, sorted canonically; atom permutations (G, N) (atom j goes to
    ``permutations[g, j]``); spglib's Wyckoff letters (N,) and Wyckoff multiplicities (N,)."""

    reference: Crystal
    space_group: int
    rotations: np.ndarray
    translations: np.ndarray
    permutations: np.ndarray
    wyckoffs: tuple[str, ...]
    multiplicities: tuple[int, ...]

    # ---------------------------------------------------------------- lattice
    def strain_basis(self) -> np.ndarray:
        """Orthonormal (Frobenius) basis (K, 3, 3) of the symmetric Cartesian strains the group
        allows."""
        return self.named_strain_basis()[0]

    def named_strain_basis(self) -> tuple[np.ndarray, list[str]]:
        """The canonical strain basis (K, 3, 3) and the lattice parameter naming each direction."""
        basis, names = self._strain_basis
        return basis.copy(), list(names)

    @cached_property
    def _strain_basis(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """Built once per Symmetry (exact arithmetic is slow next to its uses)."""
        images = np.zeros((6, 6), dtype=object)  # column m: Σ_g R_gᵀ B_m R_g in components
        for m, (i, j) in enumerate(METRIC_COMPONENTS):
            unit = np.zeros((3, 3), dtype=np.int64)
            unit[i, j] = unit[j, i] = 1
            summed = np.einsum("gki,kl,glj->ij", self.rotations, unit,
                               self.rotations)  # exact integers
            images[:, m] = [int(summed[p, q]) for p, q in METRIC_COMPONENTS]
        rows, pivots = _row_echelon_basis(images.T)
        adjugate = np.array(_adjugate(self.reference.lattice.tolist()))  # A⁻¹ up to a factor det(A)
        strains = []
        for row in rows:
            metric = np.zeros((3, 3))
            for value, (i, j) in zip(row, METRIC_COMPONENTS):
                metric[i, j] = metric[j, i] = float(value)
            strain = _matmul(_matmul(adjugate, metric), adjugate.T)
            strains.append(0.5 * (strain + strain.T))
        return _gram_schmidt(strains, shape=(3, 3)), tuple(METRIC_NAMES[p] for p in pivots)

    def project_strain(self, strain: np.ndarray) -> np.ndarray:
        """Orthogonal (Frobenius) projection (3, 3) of a symmetric strain onto the allowed ones
        (equal to the Reynolds average over the Cartesian rotations)."""
        basis = self._strain_basis[0]
        coefficients = [_dot(s, strain) for s in basis]
        return np.array(
            [[math.fsum(c * s[i, j] for c, s in zip(coefficients, basis)) for j in range(3)]
             for i in range(3)])

    # ----------------------------------------------------------- coordinates
    def project_displacement(self, displacement: np.ndarray) -> np.ndarray:
        """P(u) (N, 3): the Reynolds average of fractional displacements u (N, 3), summed with
        ``math.fsum`` (correctly rounded, so independent of the operations' order)."""
        u = np.asarray(displacement, dtype=float)
        images = u[self.permutations]  # (G, N, 3): u_{π_g(j)}
        terms = np.einsum("gil,gjl->jigl", self._inverse_rotations,
                          images)  # each term one product, no sums
        n_ops = len(self.rotations)
        return np.array(
            [[math.fsum(terms[j, i].ravel()) / n_ops for i in range(3)] for j in range(len(u))])

    @cached_property
    def _inverse_rotations(self) -> np.ndarray:
        """R_g⁻¹ (G, 3, 3), exact integers stored as floats."""
        return np.array([_integer_inverse(r) for r in self.rotations], dtype=float)

    def symmetry_axes(self) -> tuple[np.ndarray, list[str]]:
        """Canonical orthonormal basis (K, N, 3) of symmetric fractional displacements, and a
        name for each axis such as "O 6c x" (see the module docstring)."""
        n_atoms = len(self.reference)
        axes, names = [], []
        orbits = self.orbits()
        elements = [self.reference.species[orbit[0]] for orbit in orbits]
        counters: dict[str, int] = {}
        for orbit, element in zip(orbits, elements):
            representative = orbit[0]
            counters[element] = counters.get(element, 0) + 1
            label = f"{element}{counters[element]}" if elements.count(element) > 1 else element
            site = f"{self.multiplicities[representative]}{self.wyckoffs[representative]}"
            stabilizer = self.rotations[self.permutations[:, representative] == representative]
            directions, pivots = _row_echelon_basis(np.sum(stabilizer, axis=0).T.astype(object))
            fields = [self._orbit_field(representative, direction) for direction in directions]
            for field, pivot in zip(_gram_schmidt(fields, shape=(n_atoms, 3)), pivots):
                axes.append(field)
                names.append(f"{label} {site} {COORDINATE_NAMES[pivot]}")
        return (np.array(axes) if axes else np.zeros((0, n_atoms, 3))), names

    def orbits(self) -> list[list[int]]:
        """Atom indices of each orbit, representative first, in the canonical order."""
        positions = np.round(self.reference.frac_coords % 1.0, POSITION_DECIMALS) % 1.0
        found = {
            tuple(sorted({int(k)
                          for k in self.permutations[:, j]}))
            for j in range(len(self.reference))
        }
        orbits: list[list[int]] = []
        for orbit in found:
            members = sorted(orbit, key=lambda k: tuple(positions[k]))
            orbits.append(members)
        numbers = self.reference.atomic_numbers
        return sorted(
            orbits, key=lambda o: (int(numbers[o[0]]), self.wyckoffs[o[0]], tuple(positions[o[0]])))

    def _orbit_field(self, representative: int, direction: Sequence[Fraction]) -> np.ndarray:
        """Exact field (N, 3) of Fractions: u_{π_g(rep)} = R_g v, zero off the orbit."""
        field = np.full((len(self.reference), 3), Fraction(0), dtype=object)
        placed: set[int] = set()
        for rotation, permutation in zip(self.rotations, self.permutations):
            atom = int(permutation[representative])
            image = rotation.astype(object) @ np.asarray(direction, dtype=object)
            if atom in placed:
                if any(a != b for a, b in zip(field[atom], image)):
                    raise ValueError(
                        "inconsistent site symmetry: is symprec too loose for this structure?")
                continue
            field[atom] = image
            placed.add(atom)
        return field


#: Largest symmetry tolerance accepted (Å).
MAX_SYMPREC = 0.5


def find_symmetry(reference: Crystal, symprec: float = SYMPREC) -> Symmetry:
    """The space-group operations of ``reference`` (canonically sorted) with each one's atom
    permutation; ``symprec`` in Å, at most :data:`MAX_SYMPREC` (beyond, distinct atoms would count
    as images)."""
    instance(reference, "reference", Crystal,
             "convert a pymatgen Structure with Crystal.from_pymatgen")
    symprec = real(symprec, "symprec", low=0, low_open=True, high=MAX_SYMPREC, unit="Å")
    cell = (reference.lattice, reference.frac_coords, reference.atomic_numbers)
    # spglib's annotation asks for sequences, but it takes (and converts) numpy arrays
    found = spglib.get_symmetry_dataset(cell, symprec=symprec)  # type: ignore[arg-type]
    if found is None:
        raise ValueError(
            f"spglib could not determine the symmetry of {reference!r} (symprec {symprec} Å)")
    rotations = np.array(found.rotations, dtype=np.int64)
    translations = np.array(found.translations, dtype=float)
    wrapped = np.round(translations % 1.0, POSITION_DECIMALS) % 1.0
    order = sorted(range(len(rotations)), key=lambda g:
                   (tuple(rotations[g].ravel()), tuple(wrapped[g])))
    rotations, translations = rotations[order], translations[order]
    permutations = np.array(
        [_permutation(reference, r, t, symprec) for r, t in zip(rotations, translations)])
    per_cell = len(found.std_types) / len(reference)  # standard cell atoms per atom of this cell
    multiplicities = []
    for j in range(len(reference)):
        orbit_size = len(set(permutations[:, j].tolist()))
        multiplicities.append(int(round(orbit_size * per_cell)))
    return Symmetry(reference, int(found.number), rotations, translations, permutations,
                    tuple(found.wyckoffs), tuple(multiplicities))


def _permutation(reference: Crystal, rotation: np.ndarray, translation: np.ndarray,
                 symprec: float) -> np.ndarray:
    images = reference.frac_coords @ rotation.T + translation
    difference = images[:, None, :] - reference.frac_coords[None, :, :]
    difference -= np.round(difference)
    distance = np.linalg.norm(difference @ reference.lattice, axis=2)
    distance[reference.atomic_numbers[:, None] != reference.atomic_numbers[None, :]] = np.inf
    permutation = np.argmin(distance, axis=1)
    if np.any(distance[np.arange(len(reference)), permutation] > 10 * symprec):
        raise ValueError(
            "a symmetry operation does not map the structure onto itself; is symprec too loose?")
    return permutation


# ----------------------------------------------------------------- exact and fsum helpers
def _row_echelon_basis(rows: np.ndarray) -> tuple[list[list[Fraction]], list[int]]:
    """Reduced row-echelon basis of the row space of an integer/rational matrix (exact), and
    each row's pivot column. Unique for a given space: the canonical basis."""
    matrix = [[Fraction(int(v)) if not isinstance(v, Fraction) else v for v in row] for row in rows]
    n_cols = len(matrix[0]) if matrix else 0
    basis, pivots, row = matrix, [], 0
    for col in range(n_cols):
        found = next((r for r in range(row, len(basis)) if basis[r][col] != 0), None)
        if found is None:
            continue
        basis[row], basis[found] = basis[found], basis[row]
        lead = basis[row][col]
        basis[row] = [v / lead for v in basis[row]]
        for r in range(len(basis)):
            if r != row and basis[r][col] != 0:
                factor = basis[r][col]
                basis[r] = [a - factor * b for a, b in zip(basis[r], basis[row])]
        pivots.append(col)
        row += 1
    return basis[:row], pivots


def _gram_schmidt(vectors: Sequence[Any], shape: tuple[int, ...]) -> np.ndarray:
    """Orthonormalise vectors in order; exact when they hold Fractions (then one correctly
    rounded square root each), fsum-based for floats. Returns float (K, *shape)."""
    done: list[tuple[list[Any], Any]] = []
    result: list[np.ndarray] = []
    for vector in vectors:
        flat = list(np.asarray(vector, dtype=object).ravel())
        exact = all(isinstance(v, (Fraction, int)) for v in flat)
        for previous, previous_norm2 in done:
            if exact:
                coefficient = (sum(
                    (a * b for a, b in zip(flat, previous)), Fraction(0)) / previous_norm2)
            else:
                coefficient = math.fsum(a * b for a, b in zip(flat, previous)) / previous_norm2
            flat = [a - coefficient * b for a, b in zip(flat, previous)]
        norm2 = sum((v * v for v in flat), Fraction(0)) if exact else math.fsum(v * v for v in flat)
        if norm2 == 0:
            raise ValueError("linearly dependent basis vectors (internal error)")
        done.append((flat, norm2))
        norm = math.sqrt(norm2)
        result.append(np.array([float(v) / norm for v in flat]).reshape(shape))
    return np.array(result).reshape(len(result), *shape)


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Correctly rounded Σ a_i b_i over all entries."""
    return math.fsum((np.asarray(a, dtype=float) * np.asarray(b, dtype=float)).ravel())


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3×3 product with correctly rounded sums (no BLAS: the same bits on every CPU)."""
    return np.array(
        [[math.fsum(a[i, k] * b[k, j] for k in range(3)) for j in range(3)] for i in range(3)])


def _adjugate(m: Sequence[Sequence[Any]]) -> list[list]:
    """adj(M) = det(M) M⁻¹ of a 3×3 matrix by cofactors, in Python arithmetic (no LAPACK):
    exact for integers; for floats each entry is one correctly rounded a·b − c·d."""
    adjugate: list[list[Any]] = [[0] * 3 for _ in range(3)]
    for i in range(3):
        for j in range(3):
            (r0, r1), (c0, c1) = [k for k in range(3) if k != j], [k for k in range(3) if k != i]
            adjugate[i][j] = (-1)**(i + j) * (m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0])
    return adjugate


def _integer_inverse(rotation: np.ndarray) -> np.ndarray:
    """R⁻¹ of an integer rotation with det ±1, exactly (integer adjugate)."""
    r = [[int(v) for v in row] for row in rotation]
    adjugate = _adjugate(r)
    det = sum(r[0][k] * adjugate[k][0] for k in range(3))
    if det not in (1, -1):
        raise ValueError(f"a rotation in the lattice basis has determinant {det}, not ±1")
    return np.array(adjugate, dtype=np.int64) * det
