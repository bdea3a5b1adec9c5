"""Energy adapter: scans agree with point-wise energies, forces and slopes with finite
differences, relaxation finds the minimum again; CHGNet on a real oxide; clear errors."""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("ase")

from xrdcore import Crystal, Diffractometer, datasets, energy
from xrdcore.landscape.directions import atom_direction, lattice_direction, random_direction
from xrdcore.landscape.scans import energy_scan, local_minima, scan
from xrdcore.structure.matching import RECOVERY_TOLERANCES, match
from xrdcore.structure.perturb import perturb

FCC = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]


def moved(crystal, direction, t):
    return crystal.replace(lattice=crystal.lattice + t * direction.d_lattice,
                           frac_coords=crystal.frac_coords + t * direction.d_frac)


@pytest.fixture(scope="module")
def copper():
    """Conventional fcc Cu cell, slightly off EMT's lattice constant and with one atom moved, so
    that forces and stress are non-zero."""
    coords = np.array(FCC, dtype=float)
    coords[1] += [0.02, -0.01, 0.015]
    return Crystal(np.diag([3.65, 3.60, 3.62]), coords, ["Cu"] * 4)


@pytest.fixture(scope="module")
def rutile():
    return datasets.load_prototype("A2B_tP6_136_f_a")


@pytest.mark.parametrize("make", [
    lambda c: lattice_direction(c, 1), lambda c: atom_direction(c, 2, 0),
    lambda c: random_direction(c, np.random.default_rng(1), strain=0.02)
])
def test_scan_agrees_with_pointwise_energy_and_its_slope_with_finite_differences(copper, make):
    direction = make(copper)
    offsets = np.linspace(-0.04, 0.04, 5)
    result = energy_scan(copper, direction, offsets, calc="emt")
    np.testing.assert_array_equal(result.offsets, offsets)
    pointwise = [energy.energy(moved(copper, direction, t), calc="emt") for t in offsets]
    np.testing.assert_allclose(result.loss, pointwise, rtol=1e-12)
    h = 1e-5
    for t, slope in zip(offsets, result.slope):
        up, down = (energy.energy(moved(copper, direction, t + s), calc="emt") for s in (h, -h))
        assert slope == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-9)
    assert np.ptp(result.slope) > 1e-3  # the profile is not flat: the comparison has teeth
    values_only = energy_scan(copper, direction, offsets, calc="emt", slopes=False)
    np.testing.assert_array_equal(values_only.loss, result.loss)
    assert np.all(np.isnan(values_only.slope))


def test_forces_are_minus_the_energy_gradient(copper):

    def total_energy(crystal):
        return energy.energy(crystal, calc="emt") * len(crystal)

    value, forces = energy.energy_and_forces(copper, calc="emt")
    assert value == pytest.approx(total_energy(copper) / len(copper))
    assert forces.shape == (4, 3) and np.abs(forces).max() > 0.05
    h = 1e-5
    for atom in range(4):
        for axis in range(3):
            direction = atom_direction(copper, atom, axis)
            derivative = (total_energy(moved(copper, direction, h)) -
                          total_energy(moved(copper, direction, -h))) / (2 * h)
            assert forces[atom, axis] == pytest.approx(-derivative, rel=1e-5, abs=1e-7)


def test_two_dimensional_scan_has_the_xrd_scan_shape(copper):
    first, second = lattice_direction(copper, 0), atom_direction(copper, 1, 2)
    offsets = (np.linspace(-0.02, 0.02, 3), np.linspace(-0.1, 0.1, 2))
    result = energy_scan(copper, [first, second], offsets, calc="emt")
    xrd = Diffractometer("CuKa", (20, 80), backend="cpu")
    reference = scan(copper, [first, second], offsets, xrd.pattern(copper, fwhm=0.2), xrd, fwhm=0.2)
    assert result.loss.shape == reference.loss.shape == (3, 2)
    corner = copper.replace(lattice=copper.lattice + 0.02 * first.d_lattice,
                            frac_coords=copper.frac_coords - 0.1 * second.d_frac)
    assert result.loss[2, 0] == pytest.approx(energy.energy(corner, calc="emt"), rel=1e-12)


def test_relaxation_returns_a_perturbed_cell_to_the_minimum():
    ideal = Crystal(np.eye(3) * 3.6, FCC, ["Cu"] * 4)
    truth = energy.relax(ideal, calc="emt", fmax=1e-4).crystal  # EMT's own fcc minimum
    assert energy.relax(truth, calc="emt", fmax=1e-4).steps <= 1
    for seed in range(2):
        start = perturb(truth, strain=0.03, displacement=0.1, seed=seed)
        assert not match(start, truth, **RECOVERY_TOLERANCES).matched
        result = energy.relax(start, calc="emt", fmax=1e-4)
        assert result.converged and result.max_force < 1e-4
        assert match(result.crystal, truth, **RECOVERY_TOLERANCES).matched
        assert result.energy == pytest.approx(energy.energy(truth, calc="emt"), abs=1e-6)
        assert result.energy < energy.energy(start, calc="emt") - 1e-3


def test_relaxation_with_a_fixed_cell_keeps_the_lattice(copper):
    result = energy.relax(copper, calc="emt", cell=False, fmax=1e-3, optimizer="FIRE")
    np.testing.assert_array_equal(result.crystal.lattice, copper.lattice)
    assert result.converged and result.energy < energy.energy(copper, calc="emt")


def test_chgnet_energy_and_forces_on_rutile(rutile):
    import torch

    threads = torch.get_num_threads()
    value, forces = energy.energy_and_forces(rutile)
    assert torch.get_num_threads() == threads  # the single-thread setting is local
    assert (np.isfinite(value) and
            -12 < value < -6)  # eV per atom for TiO2 with CHGNet's MP reference
    assert forces.shape == (6, 3) and np.abs(forces.sum(axis=0)).max() < 1e-3  # no net force
    h = 0.01  # Å: CHGNet runs in float32, so the step must beat rounding noise
    for atom, axis in [(0, 0), (2, 0), (3, 1)]:
        direction = atom_direction(rutile, atom, axis)
        up, down = (energy.energy(moved(rutile, direction, s)) * len(rutile) for s in (h, -h))
        assert forces[atom, axis] == pytest.approx(-(up - down) / (2 * h), abs=0.01)
    assert np.abs(forces).max() > 0.05  # the experimental structure is not CHGNet's exact minimum


def test_chgnet_energy_is_lowest_near_the_truth_along_a_lattice_stretch(rutile):
    strains = np.linspace(-0.08, 0.08, 9)
    result = energy_scan(rutile, lattice_direction(rutile, 0), strains)
    assert len(local_minima(result.loss)) == 1
    assert (abs(strains[np.argmin(result.loss)])
            <= 0.02 + 1e-9)  # CHGNet (PBE-like) cells run ~1 % large
    assert np.all(np.diff(np.sign(result.slope)) >= 0)  # slope changes sign once, from − to +
    h = 2e-3
    up, down = (energy.energy(moved(rutile, lattice_direction(rutile, 0), s)) for s in (h, -h))
    assert result.slope[4] == pytest.approx((up - down) / (2 * h), rel=0.05, abs=2e-3)
    values_only = energy_scan(rutile, lattice_direction(rutile, 0), strains[3:6], slopes=False)
    np.testing.assert_allclose(values_only.loss, result.loss[3:6],
                               atol=1e-5)  # CHGNet's task "e" path


def test_unsupported_elements_and_partial_occupancy_are_explained():
    californium = datasets.load_prototype("A_aP4_2_aci")
    with pytest.raises(ValueError, match=r"Cf \(Z = 98\).*Z = 1 … 94"):
        energy.energy(californium)
    iron = Crystal(np.eye(3) * 2.87, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Fe", "Fe"])
    with pytest.raises(ValueError, match=r"EMT has no parameters for Fe"):
        energy.energy(iron, calc="emt")
    disordered = Crystal(
        np.eye(3) * 3.6, [[0, 0, 0], [0, 0, 0]], ["Cu", "Au"], occupancies=[0.5, 0.5])
    with pytest.raises(ValueError, match="partially occupied"):
        energy.to_atoms(disordered)
    with pytest.raises(TypeError, match="from_pymatgen"):
        energy.to_atoms(californium.to_pymatgen())


def test_bad_calculator_names_and_inputs_are_explained(copper):
    with pytest.raises(ValueError, match=r"unknown calculator 'mace'.*'chgnet', 'emt'"):
        energy.calculator("mace")
    with pytest.raises(TypeError, match="ASE calculator"):
        energy.calculator(42)
    with pytest.raises(ValueError, match="NaN"):
        energy_scan(copper, lattice_direction(copper, 0), [0.0, np.nan], calc="emt")
    with pytest.raises(ValueError, match="empty"):
        energy_scan(copper, lattice_direction(copper, 0), [], calc="emt")
    with pytest.raises(ValueError, match="does not fit"):
        energy_scan(copper, lattice_direction(Crystal(np.eye(3) * 3, [[0, 0, 0]], ["Cu"]), 0),
                    [0.0], calc="emt")
    with pytest.raises(ValueError, match="empty"):
        Crystal(np.eye(3), np.zeros((0, 3)), [])


def test_missing_dependencies_name_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ase.calculators.emt", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[energy\]"'):
        energy.calculator("emt")


def test_importing_xrdcore_does_not_import_torch_or_ase():
    code = ("import sys, xrdcore, xrdcore.energy; "
            "assert not {'torch', 'ase', 'chgnet'} & set(sys.modules), sys.modules.keys()")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_chgnet_stress_without_forces(rutile):
    """CHGNet computes stress only together with forces; asking for stress alone still works
    and gives the same stress as asking for both."""
    calc = energy.calculator()
    _, stress_alone = energy._evaluate(rutile, calc, forces=False, stress=True)
    _, _, stress_both = energy._evaluate(rutile, calc, forces=True, stress=True)
    assert stress_alone.shape == (3, 3)
    np.testing.assert_allclose(stress_alone, stress_both, atol=1e-6)
