"""Peak-for-peak parity with pymatgen's XRDCalculator (the reference implementation).

Every prototype of the default study set (≤ 20 atoms) and every larger prototype, plus
pymatgen's example structures, other wavelengths and ranges, Debye–Waller factors and
partial occupancy. Criteria: the same peaks above threshold, positions within 1e-5°,
scaled intensities within 1e-4 (absolute, max = 100), same d-spacings and multiplicities.
"""

import numpy as np
import pytest
from pymatgen.analysis.diffraction.xrd import XRDCalculator
from pymatgen.core import Lattice, Structure

from xrdcore import Crystal, Diffractometer, datasets

POSITION_TOL = 1e-5  # deg
INTENSITY_TOL = 1e-4  # scaled units (max 100)


def assert_same_pattern(ours, ref):
    assert len(ours) == len(ref.x), f"{len(ours)} peaks vs pymatgen's {len(ref.x)}"
    np.testing.assert_allclose(ours.two_theta, ref.x, rtol=0, atol=POSITION_TOL)
    np.testing.assert_allclose(ours.intensity, ref.y, rtol=0, atol=INTENSITY_TOL)
    np.testing.assert_allclose(ours.d_spacing, ref.d_hkls, rtol=1e-10)
    assert ours.multiplicity.tolist() == [sum(f["multiplicity"] for f in fam) for fam in ref.hkls]


def _check(structure, wavelength="CuKa", two_theta_range=(10, 90), **calc_kwargs):
    ours = Diffractometer(wavelength, two_theta_range).peaks(Crystal.from_pymatgen(structure))
    ref = XRDCalculator(wavelength, **calc_kwargs).get_pattern(structure,
                                                               two_theta_range=two_theta_range)
    assert_same_pattern(ours, ref)
    return ours


@pytest.mark.parametrize("proto", datasets.study_set(), ids=lambda p: p.name)
def test_study_set_matches_pymatgen(proto):
    ours = _check(proto.structure())
    assert len(ours) > 0


@pytest.mark.parametrize("proto", datasets.list_prototypes(min_atoms=21), ids=lambda p: p.name)
def test_large_prototypes_match_pymatgen(proto):
    _check(proto.structure())


@pytest.mark.parametrize("name", datasets.example_names())
def test_example_structures_match_pymatgen(name):
    _check(datasets.load_example(name).to_pymatgen())


@pytest.mark.parametrize("wavelength", ["MoKa", "CrKa", "AgKb1", 1.0, 2.5])
@pytest.mark.parametrize("two_theta_range", [(5, 90), (0, 150), (30.5, 60.25)])
def test_other_wavelengths_and_ranges(wavelength, two_theta_range):
    _check(datasets.load_example("LiFePO4").to_pymatgen(), wavelength, two_theta_range)


def test_debye_waller_factors():
    structure = datasets.load_example("SrTiO3").to_pymatgen()
    b = {"Sr": 0.6, "Ti": 0.4, "O": 1.1}
    structure.add_site_property("b_iso", [b[site.specie.symbol] for site in structure])
    _check(structure, debye_waller_factors=b)


def test_partial_occupancy():
    structure = Structure(Lattice.tetragonal(3.9, 4.1), [{
        "Ba": 0.6,
        "Sr": 0.4
    }, {
        "Ti": 0.9,
        "Zr": 0.1
    }, "O", "O", "O"], [[0, 0, 0], [0.5, 0.5, 0.52], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    _check(structure)
