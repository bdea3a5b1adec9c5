"""Free parameters ↔ Crystal, with the chain rule for gradients.

A :class:`Parametrization` fixes the species and chooses how the lattice and the
coordinates may move:

========================  =============================================================
lattice mode              parameters
========================  =============================================================
``"free"``                the 9 components of A (Å), rotations included
``"family"``              p (K,): A = A_ref (I + Σ_i p_i S_i) with S_i an orthonormal
                          basis of the symmetric strains the reference's point group
                          allows (K = 1 cubic … 6 triclinic): the crystal-family constraint
``"fixed"``               none (the template's lattice)
========================  =============================================================

========================  =============================================================
coordinate mode           parameters
========================  =============================================================
``"free"``                the 3N fractional coordinates (P1)
``"spacegroup"``          c (K,): x = x_ref + Σ_k c_k a_k along the symmetry axes a_k of
                          the reference's space group (:mod:`xrdcore.structure.symmetry`)
``"fixed"``               none (the template's coordinates)
========================  =============================================================

The constrained modes are linear in their parameters, so gradients are exact projections
(dL/dp_i = ⟨A_refᵀ dL/dA, S_i⟩, dL/dc_k = ⟨dL/dx, a_k⟩) and any optimiser, L-BFGS included,
works on them. :meth:`Parametrization.parameters` maps any crystal into the parametrisation
(the projection applied to a start), :meth:`Parametrization.project` = crystal ∘ parameters is
idempotent and leaves the reference unchanged. The reference is the ground truth: the
constraints use its symmetry, as in the study.

Arguments are checked: the template and reference must be Crystals with the same atoms in the
same order, modes are names (a misspelt one gets the nearest suggested), a parameter vector
must have the right shape and be finite (a batch of them, and gradients, the right shape: NaN
marks an invalid start in a batched descent). A parameter vector that maps to no valid
crystal (a collapsed cell, an over-full site) raises the Crystal's own
:class:`~xrdcore.validation.StructureError`, unchanged.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.structure.crystal import Crystal, check_crystal
from xrdcore.structure.symmetry import Symmetry, find_symmetry
from xrdcore.validation import choice, describe, real_array

LATTICE_MODES = ("free", "family", "fixed")
COORDINATE_MODES = ("free", "spacegroup", "fixed")


class CrystalGradient(Protocol):
    """What :meth:`Parametrization.gradient` needs of a loss's gradient (e.g. a
    :class:`~xrdcore.gradients.LossGradient`): dL/dA (3, 3) and dL/dx (N, 3)."""

    # read-only, so that a NamedTuple (LossGradient, CombinedGradient) fits
    @property
    def d_lattice(self) -> np.ndarray:
        ...

    @property
    def d_frac(self) -> np.ndarray:
        ...


class Parametrization:
    """Maps parameter vectors to crystals with ``template``'s species (see the module docstring)."""

    def __init__(self, template: Crystal, lattice: str = "free", coordinates: str = "free",
                 reference: Crystal | None = None) -> None:
        check_crystal(template, "template")
        if reference is not None:
            check_crystal(reference, "reference")
        self.lattice_mode = choice(lattice, "lattice mode", LATTICE_MODES)
        self.coordinate_mode = choice(coordinates, "coordinate mode", COORDINATE_MODES)
        self.template = template
        self.reference = reference if reference is not None else template
        self._check_atoms(self.reference, "the reference")
        self.symmetry: Symmetry | None = None
        if lattice == "family" or coordinates == "spacegroup":
            self.symmetry = find_symmetry(self.reference)
        if lattice == "family":
            assert self.symmetry is not None  # found above for this mode
            self.strain_basis = self.symmetry.strain_basis()
        else:
            self.strain_basis = np.zeros((0, 3, 3))
        self.axes: np.ndarray
        self.axis_names: list[str]
        if coordinates == "spacegroup":
            assert self.symmetry is not None  # found above for this mode
            self.axes, self.axis_names = self.symmetry.symmetry_axes()
        else:
            self.axes, self.axis_names = np.zeros((0, len(template), 3)), []
        self.n_lattice = {"free": 9, "family": len(self.strain_basis), "fixed": 0}[lattice]
        self.n_coordinates = {
            "free": 3 * len(template),
            "spacegroup": len(self.axes),
            "fixed": 0
        }[coordinates]

    @property
    def size(self) -> int:
        """Number of free parameters."""
        return self.n_lattice + self.n_coordinates

    def __repr__(self) -> str:
        return (f"Parametrization(lattice={self.lattice_mode!r}, "
                f"coordinates={self.coordinate_mode!r}, {self.size} parameters)")

    def _check_atoms(self, crystal: Crystal, name: str) -> None:
        if len(crystal) != len(
                self.template) or np.any(crystal.atomic_numbers != self.template.atomic_numbers):
            raise ValueError(
                f"{name} must have the template's atoms in the same order: the template is "
                f"{self.template!r}, {name} {crystal!r}")

    # ------------------------------------------------------------------ maps
    def parameters(self, crystal: Crystal) -> np.ndarray:
        """Parameters closest to ``crystal`` (projected onto the constraints)."""
        check_crystal(crystal)
        self._check_atoms(crystal, "the crystal")
        parts: list[np.ndarray] = []
        if self.lattice_mode == "free":
            parts.append(crystal.lattice.ravel())
        elif self.lattice_mode == "family":
            deformation = np.linalg.solve(self.reference.lattice, crystal.lattice) - np.eye(3)
            strain = 0.5 * (deformation + deformation.T)  # the antisymmetric part is a rotation
            parts.append(np.einsum("kij,ij->k", self.strain_basis, strain))
        if self.coordinate_mode == "free":
            parts.append(crystal.frac_coords.ravel())
        elif self.coordinate_mode == "spacegroup":
            displacement = crystal.frac_coords - self.reference.frac_coords
            displacement -= np.round(displacement)
            assert self.symmetry is not None  # found in __init__ for this mode
            symmetric = self.symmetry.project_displacement(displacement)
            parts.append(np.einsum("knx,nx->k", self.axes, symmetric))
        return np.concatenate(parts) if parts else np.zeros(0)

    def crystal(self, params: ArrayLike) -> Crystal:
        """The crystal for a parameter vector."""
        params = real_array(params, "params")
        if params.shape != (self.size, ):
            raise ValueError(
                f"expected {self.size} parameters ({self!r}), got shape {params.shape}")
        lattices, frac_coords = self.structures(params[None])
        return self.template.replace(lattice=lattices[0], frac_coords=frac_coords[0])

    def structures(self, params: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Lattices (B, 3, 3) in Å and fractional coordinates (B, N, 3) for parameter vectors
        (B, size), unchecked but for their shape (no Crystal is built, NaN passes through): the map
        of :meth:`crystal`, batched."""
        params = np.asarray(params, dtype=float)
        if params.ndim != 2 or params.shape[1] != self.size:
            raise ValueError(
                f"params must have shape (B, {self.size}), one parameter vector per row, "
                f"got {params.shape}")
        batch = len(params)
        lattice_params, coordinate_params = params[:, :self.n_lattice], params[:, self.n_lattice:]
        if self.lattice_mode == "free":
            lattices = lattice_params.reshape(batch, 3, 3)
        elif self.lattice_mode == "family":
            deformation = np.eye(3) + np.einsum("bk,kij->bij", lattice_params, self.strain_basis)
            lattices = self.reference.lattice @ deformation
        else:
            lattices = np.broadcast_to(self.template.lattice, (batch, 3, 3))
        if self.coordinate_mode == "free":
            frac_coords = coordinate_params.reshape(batch, -1, 3)
        elif self.coordinate_mode == "spacegroup":
            frac_coords = self.reference.frac_coords + np.einsum("bk,knx->bnx", coordinate_params,
                                                                 self.axes)
        else:
            frac_coords = np.broadcast_to(self.template.frac_coords, (batch, len(self.template), 3))
        return lattices, frac_coords

    def project(self, crystal: Crystal) -> Crystal:
        """The crystal of ``parameters(crystal)``: idempotent, the reference is a fixed point."""
        return self.crystal(self.parameters(crystal))

    def gradient(self, result: CrystalGradient) -> np.ndarray:
        """dL/d(parameters) from :func:`xrdcore.gradients.loss_and_grad`'s result (chain rule)."""
        if not (hasattr(result, "d_lattice") and hasattr(result, "d_frac")):
            raise TypeError(
                f"result must hold d_lattice and d_frac, as what loss_and_grad returns does, "
                f"got {describe(result)}")
        return self.gradients(result.d_lattice[None], result.d_frac[None])[0]

    def gradients(self, d_lattice: ArrayLike, d_frac: ArrayLike) -> np.ndarray:
        """dL/d(parameters) (B, size) from dL/dA (B, 3, 3) and dL/dx (B, N, 3): :meth:`gradient`,
        batched."""
        d_lattice, d_frac = (np.asarray(d_lattice, dtype=float), np.asarray(
            d_frac, dtype=float))  # NaN passes through
        n_atoms = len(self.template)
        if (d_lattice.ndim != 3 or d_lattice.shape[1:] != (3, 3) or
                d_frac.shape != (len(d_lattice), n_atoms, 3)):
            raise ValueError(f"gradients must have shapes (B, 3, 3) and (B, {n_atoms}, 3), "
                             f"got {d_lattice.shape} and {d_frac.shape}")
        parts: list[np.ndarray] = []
        if self.lattice_mode == "free":
            parts.append(d_lattice.reshape(len(d_lattice), 9))
        elif self.lattice_mode == "family":
            d_deformation = self.reference.lattice.T @ d_lattice  # A = A_ref (I + E)
            parts.append(np.einsum("kij,bij->bk", self.strain_basis, d_deformation))
        if self.coordinate_mode == "free":
            parts.append(d_frac.reshape(len(d_frac), -1))
        elif self.coordinate_mode == "spacegroup":
            parts.append(np.einsum("knx,bnx->bk", self.axes, d_frac))
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(d_lattice), 0))


def p1(template: Crystal) -> Parametrization:
    """Lattice and all coordinates free."""
    return Parametrization(template, "free", "free")


def lattice_only(template: Crystal) -> Parametrization:
    """Only the lattice moves (coordinates fixed at the template's)."""
    return Parametrization(template, "free", "fixed")


def coordinates_only(template: Crystal) -> Parametrization:
    """Only the coordinates move (lattice fixed at the template's)."""
    return Parametrization(template, "fixed", "free")


def crystal_family(template: Crystal, reference: Crystal,
                   coordinates: str = "free") -> Parametrization:
    """Lattice restricted to the reference's crystal family; coordinates as given."""
    return Parametrization(template, "family", coordinates, reference)


def space_group(template: Crystal, reference: Crystal) -> Parametrization:
    """Lattice in the reference's crystal family and coordinates along its symmetry axes."""
    return Parametrization(template, "family", "spacegroup", reference)
