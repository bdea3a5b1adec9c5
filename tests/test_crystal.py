"""Crystal: validation of bad input and round trips through pymatgen and CIF."""

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from xrdcore import Crystal, datasets


def test_arrays_and_properties(cscl):
    assert cscl.lattice.shape == (3, 3)
    assert cscl.frac_coords.shape == (2, 3)
    assert cscl.atomic_numbers.tolist() == [55, 17]
    assert cscl.species == ["Cs", "Cl"]
    assert cscl.volume == pytest.approx(4.209**3)
    np.testing.assert_allclose(cscl.cart_coords[1], [2.1045] * 3)
    assert cscl.occupancies.tolist() == [1.0, 1.0] and cscl.b_iso.tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(lattice=np.zeros((3, 3))), "singular"),
     (dict(lattice=np.diag([4.0, 4.0, -4.0])), "left-handed"), (dict(lattice=np.eye(2)), "3x3"),
     (dict(lattice=[[np.nan, 0, 0], [0, 1, 0], [0, 0, 1]]), "NaN"),
     (dict(frac_coords=[[0, 0, np.nan], [0.5, 0.5, 0.5]]), "NaN"),
     (dict(frac_coords=[[0, 0, np.inf], [0.5, 0.5, 0.5]]), "NaN or inf"),
     (dict(frac_coords=np.zeros((0, 3)), species=[]), "empty"),
     (dict(frac_coords=[[0, 0], [0.5, 0.5]]), r"\(N, 3\)"),
     (dict(species=["Cs", "Xx"]), "unknown element 'Xx'"),
     (dict(species=["Cs", 0]), "not an element"),
     (dict(species=["Cs"]), "1 species for 2 positions"),
     (dict(occupancies=[1.0, 1.2]), r"\(0, 1\]"), (dict(occupancies=[1.0, 0.0]), r"\(0, 1\]"),
     (dict(b_iso=[0.0, -1.0]), "≥ 0"), (dict(b_iso=[0.0]), "one value per atom"),
     (dict(frac_coords=[[0, 0, 0], [0, 0, 0]], occupancies=[0.7, 0.6]), "total occupancy"), ])
def test_bad_input_raises_clear_value_error(kwargs, message):
    fields = dict(lattice=np.eye(3) * 4.0, frac_coords=[[0, 0, 0], [0.5, 0.5, 0.5]],
                  species=["Cs", "Cl"])
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Crystal(**fields)


def test_shared_site_with_total_occupancy_one_is_accepted():
    crystal = Crystal(
        np.eye(3) * 4, [[0, 0, 0], [0, 0, 0], [0.5, 0.5, 0.5]], ["Fe", "Ni", "O"], [0.5, 0.5, 1.0])
    assert len(crystal) == 3


def test_replace_validates_again(cscl):
    assert cscl.replace(lattice=np.eye(3) * 5).volume == pytest.approx(125)
    with pytest.raises(ValueError, match="NaN"):
        cscl.replace(frac_coords=np.full((2, 3), np.nan))
    with pytest.raises(TypeError, match="unknown Crystal field"):
        cscl.replace(coords=None)


def _matches(a: Structure, b: Structure) -> bool:
    return StructureMatcher(primitive_cell=False, scale=False, attempt_supercell=False).fit(a, b)


@pytest.mark.parametrize("name", ["SiO2", "LiFePO4", "TiO2", "Graphite"])
def test_pymatgen_round_trip(name):
    crystal = datasets.load_example(name)
    back = Crystal.from_pymatgen(crystal.to_pymatgen())
    np.testing.assert_allclose(back.lattice, crystal.lattice)
    np.testing.assert_allclose(back.frac_coords, crystal.frac_coords)
    assert back.atomic_numbers.tolist() == crystal.atomic_numbers.tolist()


def test_left_handed_pymatgen_lattice_keeps_cartesian_positions():
    structure = Structure(Lattice(np.diag([4.0, 5.0, -6.0])), ["Na", "Cl"],
                          [[0, 0, 0], [0.1, 0.2, 0.3]])
    crystal = Crystal.from_pymatgen(structure)
    assert crystal.volume > 0
    np.testing.assert_allclose(crystal.cart_coords, structure.cart_coords, atol=1e-12)
    assert _matches(crystal.to_pymatgen(), structure)


def test_disordered_site_round_trip():
    structure = Structure(Lattice.cubic(3.6), [{
        "Fe": 0.5,
        "Ni": 0.5
    }, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    crystal = Crystal.from_pymatgen(structure)
    assert len(crystal) == 3
    assert crystal.occupancies.tolist() == [0.5, 0.5, 1.0]
    back = crystal.to_pymatgen()
    assert len(back) == 2
    assert back[0].species.as_dict() == {"Fe": 0.5, "Ni": 0.5}


def test_cif_round_trip(tmp_path):
    crystal = datasets.load_prototype("AB_cP2_221_b_a")
    path = tmp_path / "cscl.cif"
    crystal.to_cif(path)
    back = Crystal.from_cif(path)
    assert _matches(back.to_pymatgen(), crystal.to_pymatgen())
    np.testing.assert_allclose(back.volume, crystal.volume, rtol=1e-6)


def test_cif_of_low_symmetry_structure_round_trip(tmp_path):
    crystal = datasets.load_example("LiFePO4")
    crystal.to_cif(tmp_path / "lfp.cif")
    assert _matches(Crystal.from_cif(tmp_path / "lfp.cif").to_pymatgen(), crystal.to_pymatgen())


@pytest.mark.parametrize(
    "text", ["", "this is not a CIF at all\n", "data_x\n_cell_length_a 4.0\n_cell_length_b\n"])
def test_malformed_cif_raises_value_error(tmp_path, text):
    path = tmp_path / "broken.cif"
    path.write_text(text)
    with pytest.raises(ValueError, match="CIF"):
        Crystal.from_cif(path)


def test_missing_cif_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        Crystal.from_cif(tmp_path / "nowhere.cif")


def test_empty_pymatgen_structure():
    with pytest.raises(ValueError, match="empty"):
        Crystal.from_pymatgen(Structure(Lattice.cubic(3), [], []))
