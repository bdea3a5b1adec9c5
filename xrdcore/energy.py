"""Energy and forces of a :class:`~xrdcore.structure.crystal.Crystal` through the ASE calculator
interface.

Any ASE calculator works; the default is CHGNet (a universal machine-learned interatomic
potential whose weights ship inside its wheel: nothing is downloaded), loaded once per
process and run on the CPU. ``"emt"`` names ASE's effective-medium potential (a few fcc
metals, H, C, N, O), small and smooth, for tests and quick experiments.

Units: energies in eV per atom, forces in eV/Å, stress in eV/Å³ (ASE's convention
σ = (1/V) ∂E/∂ε), offsets along a :class:`~xrdcore.landscape.directions.Direction` as in
:mod:`xrdcore.landscape` (relative strain for a lattice stretch, Å for atom moves).

ase, torch and chgnet are imported inside the functions, so ``import xrdcore`` needs none of
them; install them with ``pip install -e ".[energy]"`` (``make install`` does).
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.structure.crystal import Crystal, element_symbol
from xrdcore.validation import StructureError, choice, guard_memory, instance, real, whole

if TYPE_CHECKING:
    from ase import Atoms

#: Names :func:`calculator` understands.
CALCULATORS = ("chgnet", "emt")
#: Largest atomic number CHGNet covers (its atom embedding has 94 entries).
CHGNET_MAX_Z = 94
#: Relaxation defaults: largest force (eV/Å, and the cell's generalised force) at convergence,
#: step budget.
RELAX_FMAX = 0.01
RELAX_STEPS = 500
#: Threads for BLAS and torch while a calculator runs (see ``_quiet``).
THREADS = 1

#: Memory estimate of one evaluation (checked before the calculator runs): neighbour pairs within
#: CHGNet's atom-graph cutoff and bond-angle triplets within its bond-graph cutoff (Å), at
#: about this many bytes each (features, activations and gradients; a rough upper figure).
GRAPH_CUTOFF = 5.0
BOND_CUTOFF = 3.0
BYTES_PER_GRAPH_ELEMENT = 2048
#: Below this volume per atom (Å³) a cell has collapsed (solids have ≳ 5 Å³ per atom).
MIN_VOLUME_PER_ATOM = 1.0

_INSTALL_HINT = 'install the energy extra: pip install -e ".[energy]" (or make install)'


def _require(module: str) -> ModuleType:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as error:
        raise ImportError(
            f"xrdcore.energy needs {module.split('.')[0]} ({error}); {_INSTALL_HINT}") from error


@contextlib.contextmanager
def _quiet():
    """One thread for BLAS and torch (restored afterwards), and CHGNet's harmless torch warning
    about converting a tensor that requires grad silenced. The cells here are small: thread
    start-up costs more than it saves, and on a busy machine several times more."""
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    with warnings.catch_warnings(), threadpool_limits(THREADS, user_api="blas"):
        warnings.filterwarnings("ignore",
                                message="Converting a tensor with requires_grad=True to a scalar")
        if torch is not None:
            torch.set_num_threads(THREADS)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(threads)


@lru_cache(maxsize=1)
def _chgnet():
    _require("torch")
    dynamics = _require("chgnet.model.dynamics")
    model = _require("chgnet.model").CHGNet
    with _quiet(), contextlib.redirect_stdout(io.StringIO()):  # it prints the device it runs on
        return dynamics.CHGNetCalculator(model=model.load(use_device="cpu", verbose=False),
                                         use_device="cpu")


def calculator(name_or_calc: str | Any | None = None) -> Any:
    """An ASE calculator: ``None`` or ``"chgnet"`` (cached, CPU), ``"emt"``, or any ASE
    calculator object, which is returned unchanged."""
    if name_or_calc is None:
        name_or_calc = "chgnet"
    if not isinstance(name_or_calc, str):
        if not (hasattr(name_or_calc, "get_property") and hasattr(name_or_calc, "calculate")):
            raise TypeError(f"expected an ASE calculator or one of {CALCULATORS}, "
                            f"got {type(name_or_calc).__name__}")
        return name_or_calc
    name = name_or_calc.strip().lower()
    if name == "chgnet":
        return _chgnet()
    if name == "emt":
        return _require("ase.calculators.emt").EMT()
    raise ValueError(f"unknown calculator {name_or_calc!r}; choose one of {CALCULATORS} "
                     "or pass an ASE calculator object")


def supported_elements(calc: Any) -> set[int] | None:
    """Atomic numbers ``calc`` can handle, where known (CHGNet, EMT); None for other calculators."""
    kind = type(calc)
    if kind.__name__ == "CHGNetCalculator":
        return set(range(1, CHGNET_MAX_Z + 1))
    if kind.__name__ == "EMT" and kind.__module__.startswith("ase."):
        from ase.calculators.emt import parameters
        from ase.data import atomic_numbers

        return {atomic_numbers[symbol] for symbol in parameters}
    return None


def to_atoms(crystal: Crystal) -> Atoms:
    """The crystal as a periodic ``ase.Atoms`` (cell in Å, scaled positions = fractional
    coordinates). Partially occupied sites have no single energy: ValueError."""
    instance(crystal, "crystal", Crystal, "convert a pymatgen Structure with Crystal.from_pymatgen")
    Atoms = _require("ase").Atoms
    partial = np.flatnonzero(crystal.occupancies < 1)
    if len(partial):
        first = int(partial[0])
        raise ValueError(
            f"{len(partial)} site(s) are partially occupied "
            f"(e.g. {crystal.species[first]}{first} at "
            f"occupancy {crystal.occupancies[first]:g}); an energy needs an ordered structure: "
            "choose one configuration (e.g. with pymatgen's OrderDisorderedStructureTransformation)"
        )
    return Atoms(numbers=crystal.atomic_numbers, cell=crystal.lattice,
                 scaled_positions=crystal.frac_coords, pbc=True)


def _check_elements(crystal: Crystal, calc: Any) -> None:
    known = supported_elements(calc)
    if known is None:
        return
    missing = sorted({int(z) for z in crystal.atomic_numbers} - known)
    if missing:
        names = ", ".join(f"{element_symbol(z)} (Z = {z})" for z in missing)
        covered = (", ".join(
            element_symbol(z)
            for z in sorted(known)) if len(known) < 20 else f"Z = 1 … {max(known)}")
        raise ValueError(
            f"{type(calc).__name__} has no parameters for {names}; it covers {covered}")


def check_cell(crystal: Crystal) -> None:
    """StructureError for a collapsed cell, ResourceLimitError when the estimated neighbour graph
    (see :data:`BYTES_PER_GRAPH_ELEMENT`) exceeds ``LIMITS.max_memory_gb``: before any calculator
    runs."""
    density = len(crystal) / crystal.volume  # atoms per Å³
    if 1 / density < MIN_VOLUME_PER_ATOM:
        raise StructureError(
            f"the cell has collapsed: {1 / density:.3g} Å³ per atom (solids have ≳ 5); "
            "no interatomic potential is meaningful there")
    pairs = len(crystal) * density * 4 / 3 * np.pi * GRAPH_CUTOFF**3
    triplets = len(crystal) * (density * 4 / 3 * np.pi * BOND_CUTOFF**3)**2
    guard_memory(BYTES_PER_GRAPH_ELEMENT * (pairs + triplets),
                 f"an energy of {len(crystal)} atoms ({pairs:.3g} neighbour pairs)",
                 "use a smaller cell")


def _evaluate(crystal: Crystal, calc: Any, forces: bool = False, stress: bool = False) -> list[Any]:
    """[total energy (eV), forces (N, 3) if asked, stress (3, 3) if asked]. CHGNet is asked for
    only what is needed (its ``task``): forces and stress each cost a backward pass."""
    atoms = to_atoms(crystal)
    check_cell(crystal)
    _check_elements(crystal, calc)
    atoms.calc = calc
    with _quiet():
        if type(calc).__name__ == "CHGNetCalculator":
            from ase.calculators.calculator import all_changes
            from ase.stress import voigt_6_to_full_3x3_stress

            # CHGNet's tasks are "e", "ef" and "efs": stress comes only with forces
            calc.calculate(atoms, ["energy"], all_changes,
                           task="e" + "f" * (forces or stress) + "s" * stress)
            results: list[Any] = [float(calc.results["energy"])]
            if forces:
                results.append(np.array(calc.results["forces"], dtype=float))
            if stress:
                values = np.array(calc.results["stress"], dtype=float)
                if values.shape == (6, ):  # Voigt order
                    values = voigt_6_to_full_3x3_stress(values)
                results.append(values.reshape(3, 3))
            calc.reset()  # the partial results must not be served to a later ASE query
        else:
            results = [float(atoms.get_potential_energy())]
            if forces:
                results.append(np.array(atoms.get_forces(), dtype=float))
            if stress:
                results.append(np.array(atoms.get_stress(voigt=False), dtype=float))
    if not np.isfinite(results[0]):
        raise ValueError(
            f"the calculator returned a non-finite energy ({results[0]}) for {crystal!r}")
    return results


def gigapascal() -> float:
    """One GPa in eV/Å³ (ASE's value), to convert stresses and moduli."""
    return _require("ase.units").GPa


def energy(crystal: Crystal, calc: Any = None) -> float:
    """Potential energy in eV per atom."""
    (total, ) = _evaluate(crystal, calculator(calc))
    return total / len(crystal)


def energy_and_forces(crystal: Crystal, calc: Any = None) -> tuple[float, np.ndarray]:
    """Energy (eV per atom) and the forces on the atoms (N, 3), eV/Å, Cartesian."""
    total, forces = _evaluate(crystal, calculator(calc), forces=True)
    return total / len(crystal), forces


def check_supported(crystal: Crystal, calc: Any = None) -> None:
    """ValueError naming the elements of ``crystal`` that ``calc`` has no parameters for
    (nothing is checked for calculators whose coverage is unknown)."""
    _check_elements(crystal, calculator(calc))


def energy_gradient(crystal: Crystal, calc: Any = None,
                    lattice: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Energy (eV per atom) and its exact gradient from one force + stress evaluation:
    with respect to the lattice rows A at fixed fractional coordinates, dE/dA = V A⁻ᵀ σ
    (eV per atom per Å, (3, 3)), and with respect to the fractional coordinates at fixed
    lattice, dE/dx = −F Aᵀ (eV per atom per fractional unit, (N, 3)); the same variables as
    :func:`xrdcore.gradients.loss_and_grad`, so the two gradients add. ``lattice=False`` skips
    the stress (one backward pass less with CHGNet) and returns dE/dA as NaN."""
    total, forces, *stress = _evaluate(crystal, calculator(calc), forces=True, stress=lattice)
    d_lattice, d_frac = _gradient(crystal, forces, stress[0] if lattice else np.full(
        (3, 3), np.nan))
    atoms = len(crystal)
    return total / atoms, d_lattice / atoms, d_frac / atoms


def _gradient(crystal: Crystal, forces: ArrayLike,
              stress: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of the total energy (eV) from forces (eV/Å) and stress (eV/Å³): dE/dA = V A⁻ᵀ σ
    (the work V σ : ε of the strain ε = A⁻¹ δA) and dE/dx = −F Aᵀ."""
    return crystal.volume * np.linalg.solve(crystal.lattice.T,
                                            stress), -np.asarray(forces) @ crystal.lattice.T


@dataclass(frozen=True)
class Relaxation:
    crystal: Crystal
    energy: float  # eV per atom at the end
    max_force: float  # largest force on an atom at the end, eV/Å
    steps: int
    converged: bool  # forces (and, with cell=True, the cell's generalised forces) below fmax


def relax(crystal: Crystal, calc: Any = None, steps: int = RELAX_STEPS, fmax: float = RELAX_FMAX,
          cell: bool = True, optimizer: str = "BFGS") -> Relaxation:
    """Relax the atoms (and with ``cell=True`` the lattice, through ASE's FrechetCellFilter)
    to the nearest energy minimum with ASE's ``optimizer`` ("FIRE" or "BFGS") until every
    force is below ``fmax`` eV/Å or ``steps`` steps are spent."""
    optimizers = _require("ase.optimize")
    filters = _require("ase.filters")
    optimizer = choice(optimizer, "optimizer", ("FIRE", "BFGS"))
    steps = whole(steps, "steps", low=0)
    fmax = real(fmax, "fmax", low=0, low_open=True, unit="eV/Å")
    if not isinstance(cell, (bool, np.bool_)):
        raise TypeError(f"cell must be True or False, got {type(cell).__name__}")
    calc = calculator(calc)
    _check_elements(crystal, calc)
    atoms = to_atoms(crystal)
    check_cell(crystal)
    atoms.calc = calc
    target = filters.FrechetCellFilter(atoms) if cell else atoms
    run = getattr(optimizers, optimizer)(target, logfile=None)
    with _quiet():
        converged = bool(run.run(fmax=fmax, steps=steps))
        total = float(atoms.get_potential_energy())
        max_force = float(np.max(np.linalg.norm(atoms.get_forces(), axis=1)))
    relaxed = crystal.replace(lattice=np.array(atoms.cell.array),
                              frac_coords=atoms.get_scaled_positions(wrap=False))
    return Relaxation(relaxed, total / len(crystal), max_force, int(run.nsteps), converged)
