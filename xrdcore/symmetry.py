"""Space-group operations of a crystal (spglib) and the linear projectors they define.

For operations (R_g, t_g) in the lattice basis (x → R_g x + t_g) of a reference crystal:

* lattice: the metric is invariant, R_gᵀ G R_g = G. In Cartesian form the rotations are
  C_g = Aᵀ R_g A⁻ᵀ, and a symmetric Cartesian strain E keeps the symmetry when
  E = C_g E C_gᵀ for all g. The Reynolds operator E ↦ (1/|G|) Σ_g C_g E C_gᵀ projects onto
  those strains: 1 free direction for cubic, 2 tetragonal and hexagonal, 3 orthorhombic,
  4 monoclinic, 6 triclinic (the crystal-family constraint).
* coordinates: a displacement field u (N, 3), fractional, keeps the symmetry when
  u_{π_g(j)} = R_g u_j, with π_g the atom permutation of operation g. The operator
  P(u)_j = (1/|G|) Σ_g R_g⁻¹ u_{π_g(j)} projects onto those fields; an orthonormal basis of
  its image gives the *symmetry axes* along which a symmetric structure can move.

Both operators are idempotent, and zero strain / zero displacement (the reference itself)
is fixed by them; the tests check both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import spglib

from .crystal import Crystal

#: spglib tolerance (Å) for finding the operations of a reference structure.
SYMPREC = 1e-3
#: Singular values above this count as part of a projector's image.
RANK_TOL = 1e-8


@dataclass(frozen=True)
class Symmetry:
    """Operations of ``reference``: rotations (G, 3, 3) int and translations (G, 3) in the
    lattice basis, atom permutations (G, N) (atom j goes to ``permutations[g, j]``)."""

    reference: Crystal
    space_group: int
    rotations: np.ndarray
    translations: np.ndarray
    permutations: np.ndarray

    @property
    def cartesian_rotations(self) -> np.ndarray:
        """C_g = Aᵀ R_g A⁻ᵀ (G, 3, 3), orthogonal."""
        a = self.reference.lattice
        return np.einsum("ij,gjk,kl->gil", a.T, self.rotations, np.linalg.inv(a).T)

    def strain_basis(self) -> np.ndarray:
        """Orthonormal (Frobenius) basis (K, 3, 3) of the symmetric Cartesian strains the group allows."""
        basis = _symmetric_basis()
        rotations = self.cartesian_rotations
        averaged = np.array([np.mean(rotations @ e @ rotations.transpose(0, 2, 1), axis=0) for e in basis])
        projector = np.einsum("aij,bij->ab", basis, averaged)  # in the basis coordinates
        return np.einsum("ka,aij->kij", _image_basis(projector), basis)

    def project_strain(self, strain: np.ndarray) -> np.ndarray:
        """Reynolds average of a symmetric strain (3, 3)."""
        rotations = self.cartesian_rotations
        return np.mean(rotations @ strain @ rotations.transpose(0, 2, 1), axis=0)

    def displacement_projector(self) -> np.ndarray:
        """P as a (3N, 3N) matrix acting on flattened fractional displacements."""
        n_atoms = len(self.reference)
        projector = np.zeros((3 * n_atoms, 3 * n_atoms))
        for rotation, permutation in zip(self.rotations, self.permutations):
            inverse = np.linalg.inv(rotation)
            for j in range(n_atoms):
                image = permutation[j]
                projector[3 * j : 3 * j + 3, 3 * image : 3 * image + 3] += inverse
        return projector / len(self.rotations)

    def symmetry_axes(self) -> tuple[np.ndarray, list[str]]:
        """Orthonormal basis (K, N, 3) of symmetric displacements, and a name for each axis.

        An axis is named after the atoms it moves, e.g. "O2 (4f) #1": species and index of
        the first atom of the orbit, the orbit's size, and a counter within the orbit.
        """
        n_atoms = len(self.reference)
        axes = _image_basis(self.displacement_projector()).reshape(-1, n_atoms, 3)
        names, counters = [], {}
        for axis in axes:
            moved = np.flatnonzero(np.linalg.norm(axis, axis=1) > 1e-9)
            first = int(moved[0])
            orbit = len(moved)
            counters[first] = counters.get(first, 0) + 1
            names.append(f"{self.reference.species[first]}{first} ({orbit} atoms) #{counters[first]}")
        return axes, names


def find_symmetry(reference: Crystal, symprec: float = SYMPREC) -> Symmetry:
    """The space-group operations of ``reference`` with each one's atom permutation."""
    cell = (reference.lattice, reference.frac_coords, reference.atomic_numbers)
    found = spglib.get_symmetry_dataset(cell, symprec=symprec)
    if found is None:
        raise ValueError(f"spglib could not determine the symmetry of {reference!r} (symprec {symprec} Å)")
    permutations = np.array([_permutation(reference, r, t, symprec) for r, t in zip(found.rotations, found.translations)])
    return Symmetry(reference, int(found.number), np.array(found.rotations), np.array(found.translations), permutations)


def _permutation(reference: Crystal, rotation, translation, symprec) -> np.ndarray:
    images = reference.frac_coords @ rotation.T + translation
    difference = images[:, None, :] - reference.frac_coords[None, :, :]
    difference -= np.round(difference)
    distance = np.linalg.norm(difference @ reference.lattice, axis=2)
    distance[reference.atomic_numbers[:, None] != reference.atomic_numbers[None, :]] = np.inf
    permutation = np.argmin(distance, axis=1)
    if np.any(distance[np.arange(len(reference)), permutation] > 10 * symprec):
        raise ValueError("a symmetry operation does not map the structure onto itself; is symprec too loose?")
    return permutation


def _symmetric_basis() -> np.ndarray:
    """Orthonormal (Frobenius) basis of symmetric 3×3 matrices, (6, 3, 3)."""
    basis = []
    for i in range(3):
        for j in range(i, 3):
            e = np.zeros((3, 3))
            e[i, j] = e[j, i] = 1.0
            basis.append(e / np.linalg.norm(e))
    return np.array(basis)


def _image_basis(projector: np.ndarray) -> np.ndarray:
    """Orthonormal basis (rank, n) of the column space of a projector matrix (n, n)."""
    u, singular_values, _ = np.linalg.svd(projector)
    return u[:, singular_values > RANK_TOL].T
