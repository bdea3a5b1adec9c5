"""Parametrisations: dimensions per crystal family, idempotent projections that keep the truth,
symmetry preserved, and gradients through the chain rule against finite differences."""

import numpy as np
import pytest
import spglib

from xrdcore import Diffractometer, datasets
from xrdcore.gradients import loss_and_grad
from xrdcore.structure.parametrize import (Parametrization, coordinates_only, crystal_family,
                                           lattice_only, p1, space_group)

#: (prototype, crystal family, free strains)
FAMILIES = [
    ("AB_cF8_225_a_b", "cubic", 1),
    ("A2B_tP6_136_f_a", "tetragonal", 2),
    ("A2B_hP9_152_c_a", "hexagonal", 2),
    ("A_hR2_166_c-001", "hexagonal", 2),  # rhombohedral cell: the same two strains of the family
    ("AB2_oP6_58_a_g-001", "orthorhombic", 3),
    ("A2B_mP12_14_2e_e", "monoclinic", 4),
    ("A_aP4_2_aci", "triclinic", 6)
]


def shaken(crystal, seed=0, strain=0.02, shift=0.02):
    rng = np.random.default_rng(seed)
    return crystal.replace(
        lattice=crystal.lattice @ (np.eye(3) + strain * rng.standard_normal((3, 3))),
        frac_coords=crystal.frac_coords + shift * rng.standard_normal(crystal.frac_coords.shape))


def space_group_number(crystal, symprec=1e-3):
    return spglib.get_symmetry_dataset(
        (crystal.lattice, crystal.frac_coords, crystal.atomic_numbers), symprec=symprec).number


@pytest.mark.parametrize("name, family, n_strains", FAMILIES)
def test_family_constraint_dimensions(name, family, n_strains):
    truth = datasets.load_prototype(name)
    assert datasets.get_prototype(name).crystal_family == family
    assert len(crystal_family(truth, truth).strain_basis) == n_strains


@pytest.mark.parametrize("name", [f[0] for f in FAMILIES])
def test_projection_is_idempotent_and_keeps_the_truth(name):
    truth = datasets.load_prototype(name)
    parametrization = space_group(truth, truth)
    np.testing.assert_allclose(parametrization.parameters(truth), 0, atol=1e-12)
    back = parametrization.project(truth)
    np.testing.assert_allclose(back.lattice, truth.lattice, atol=1e-12)
    np.testing.assert_allclose(back.frac_coords, truth.frac_coords, atol=1e-12)
    once = parametrization.project(shaken(truth))
    twice = parametrization.project(once)
    np.testing.assert_allclose(twice.lattice, once.lattice, atol=1e-12)
    np.testing.assert_allclose(twice.frac_coords, once.frac_coords, atol=1e-12)


@pytest.mark.parametrize("name", [f[0] for f in FAMILIES])
def test_projected_structures_keep_the_space_group(name):
    truth = datasets.load_prototype(name)
    projected = space_group(truth, truth).project(shaken(truth, strain=0.03, shift=0.03))
    assert space_group_number(projected) == space_group_number(truth)
    assert (not np.allclose(projected.frac_coords, truth.frac_coords) or
            len(space_group(truth, truth).axes) == 0)


def test_family_lattice_has_the_family_metric():
    truth = datasets.load_prototype("A2B_tP6_136_f_a")  # rutile; this setting lists c first
    lattice = crystal_family(truth, truth).project(shaken(truth, strain=0.05)).lattice
    lengths = np.linalg.norm(lattice, axis=1)
    angles = [
        np.degrees(np.arccos(lattice[i] @ lattice[j] / (lengths[i] * lengths[j])))
        for i, j in ((1, 2), (0, 2), (0, 1))
    ]
    np.testing.assert_allclose(angles, 90, atol=1e-9)
    assert lengths[1] == pytest.approx(lengths[2], rel=1e-12)  # a = b
    assert lengths[0] != pytest.approx(lengths[1], rel=1e-3)


@pytest.mark.parametrize(
    "make", [
        p1, lattice_only, coordinates_only, lambda t: crystal_family(t, t),
        lambda t: space_group(t, t)
    ], ids=["p1", "lattice-only", "coordinates-only", "crystal-family", "space-group"])
def test_parameter_gradient_matches_finite_differences(make):
    truth = datasets.load_prototype("A2B_hP9_152_c_a")  # quartz: several symmetry axes
    diffractometer = Diffractometer("CuKa", (15, 60))
    target = diffractometer.pattern(truth, fwhm=0.3)
    parametrization = make(truth)
    start = parametrization.parameters(shaken(truth, seed=1, strain=0.01, shift=0.01))

    def loss(params):
        return loss_and_grad(parametrization.crystal(params), target, diffractometer, fwhm=0.3).loss

    analytic = parametrization.gradient(
        loss_and_grad(parametrization.crystal(start), target, diffractometer, fwhm=0.3))
    numeric = np.empty_like(start)
    for i in range(len(start)):
        step = np.zeros_like(start)
        step[i] = 1e-5
        numeric[i] = (-loss(start + 2 * step) + 8 * loss(start + step) - 8 * loss(start - step) +
                      loss(start - 2 * step)) / 12e-5
    assert np.abs(analytic - numeric).max() < 1e-6 * np.abs(numeric).max()


def test_symmetry_axes_are_orthonormal_and_named():
    truth = datasets.load_prototype("A2B_mP12_14_2e_e")  # baddeleyite, three general positions
    parametrization = space_group(truth, truth)
    axes = parametrization.axes.reshape(len(parametrization.axes), -1)
    np.testing.assert_allclose(axes @ axes.T, np.eye(len(axes)), atol=1e-12)
    assert len(parametrization.axis_names) == 9
    assert all(" 4e " in name for name in parametrization.axis_names)  # three orbits on Wyckoff 4e


def test_errors():
    truth = datasets.load_prototype("AB_cF8_225_a_b")
    with pytest.raises(ValueError, match="unknown lattice mode"):
        Parametrization(truth, lattice="cubic")
    with pytest.raises(ValueError, match="unknown coordinate mode"):
        Parametrization(truth, coordinates="wyckoff")
    with pytest.raises(ValueError, match="same order"):
        Parametrization(truth, reference=datasets.load_prototype("A2B_tP6_136_f_a"))
    with pytest.raises(ValueError, match="expected 15 parameters"):
        p1(truth).crystal(np.zeros(7))
