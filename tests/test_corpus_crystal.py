"""Corpus of bad structures, species, wavelengths and hostile CIF files: each is refused in our
words, quickly.

Every case is one distinct bad input, checked by :func:`bad_input.rejects` (error type, a phrase
of the message, a time limit). The CIF cases write their file into ``tmp_path`` first; a few
tests after the corpus check what must *not* be refused, and that pymatgen's warnings come back
as one :class:`~xrdcore.structure.crystal.CifWarning` naming the file.
"""

from __future__ import annotations

import bz2
import gzip
import os
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from bad_input import rejects
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymatgen.core import Lattice, Molecule, Structure
from pymatgen.core.periodic_table import DummySpecies

from xrdcore import Crystal
from xrdcore.physics.scattering import resolve_wavelength
from xrdcore.structure.crystal import MAX_B_ISO, CifWarning, atomic_number
from xrdcore.validation import LIMITS, ResourceLimitError, StructureError, limits

CELL = np.eye(3) * 4.0
FRAC = [[0, 0, 0], [0.5, 0.5, 0.5]]
SPECIES = ["Cs", "Cl"]


def crystal(**changes):
    """Crystal(...) of CsCl with some arguments changed."""
    fields = dict(lattice=CELL, frac_coords=FRAC, species=SPECIES)
    fields.update(changes)
    return lambda: Crystal(**fields)


def limited(call, **changes):
    """``call`` run with some guards of LIMITS changed."""

    def run(*args):
        with limits(**changes):
            return call(*args)

    return run


# --------------------------------------------------------------------------- Crystal(...)
CONSTRUCTOR_CASES = [
    ("species True", crystal(species=True), TypeError, "True is not an element"),
    ("species [True, 'Cl']", crystal(species=[True, "Cl"]), TypeError, "True is not an element"),
    ("species numpy bool", crystal(species=np.array([True, False])), TypeError,
     "np.True_ is not an element"),
    ("species [None, 'Cl']", crystal(species=[None, "Cl"]), TypeError, "None is not an element"),
    ("species None", crystal(species=None), TypeError, "species must be a sequence"),
    ("species float Z", crystal(species=[26.0, "Cl"]), TypeError, "26.0 is not an element"),
    ("species dict", crystal(species={
        "Cs": 1,
        "Cl": 1
    }), TypeError, "species must be a sequence"),
    ("species lower case", crystal(species=["fe", "Cl"]), ValueError, "did you mean 'Fe'"),
    ("species upper case", crystal(species=["CS", "Cl"]), ValueError, "did you mean 'Cs'"),
    ("species charged", crystal(species=["Fe2+", "Cl"]), ValueError, "carries a charge.*'Fe'"),
    ("species unknown", crystal(species=["Cs", "Xx"]), ValueError, "unknown element 'Xx'"),
    ("species Z 119", crystal(species=[119, "Cl"]), ValueError,
     "atomic number 119 is not an element"),
    ("species int array 0", crystal(species=np.array([55, 0])), ValueError,
     "atomic number 0 is not an element"),
    ("species count", crystal(species=["Cs", "Cl", "Na"]), StructureError,
     "3 species for 2 positions"),
    ("lattice complex", crystal(lattice=CELL * (1 + 1j)), TypeError,
     "lattice must hold real numbers.*complex"),
    ("lattice string", crystal(lattice="4 0 0 0 4 0 0 0 4"), TypeError,
     "lattice must be an array of numbers"),
    ("lattice string array", crystal(lattice=CELL.astype(str)), TypeError,
     "lattice must hold real numbers.*strings"),
    ("lattice bool array", crystal(lattice=np.eye(3, dtype=bool)), TypeError, "booleans"),
    ("lattice None", crystal(lattice=None), TypeError, "lattice must be an array of numbers"),
    ("lattice ragged", crystal(lattice=[[4, 0, 0], [0, 4], [0, 0, 4]]), StructureError,
     "rectangular"),
    ("lattice (3, 2)", crystal(lattice=np.ones((3, 2))), StructureError, "3x3 matrix"),
    ("lattice 1e300", crystal(lattice=CELL * 1e300), StructureError, "beyond MAX_CELL_LENGTH"),
    ("lattice 1e7 Å", crystal(lattice=np.diag([4.0, 4.0, 1e7])), StructureError,
     "lattice vector c .*MAX_CELL_LENGTH"),
    ("lattice 0.01 Å", crystal(lattice=np.diag([40.0, 40.0, 0.01])), StructureError,
     "below MIN_CELL_LENGTH"),
    ("lattice inf", crystal(lattice=np.diag([4.0, 4.0, np.inf])), StructureError, "NaN or inf"),
    ("lattice left-handed", crystal(lattice=np.diag([4.0, 4.0, -4.0])), StructureError,
     "left-handed"),
    ("lattice singular", crystal(lattice=[[4, 0, 0], [4, 0, 0], [0, 0, 4]]), StructureError,
     "singular"),
    ("frac NaN", crystal(frac_coords=[[0, 0, np.nan], [0.5, 0.5, 0.5]]), StructureError,
     "NaN or inf"),
    ("frac 1e300", crystal(frac_coords=[[0, 0, 1e300], [0.5, 0.5, 0.5]]), StructureError,
     "MAX_FRACTIONAL"),
    ("frac (2, 2)", crystal(frac_coords=[[0, 0], [0.5, 0.5]]), StructureError, r"\(N, 3\)"),
    ("frac complex", crystal(frac_coords=np.zeros((2, 3), complex)), TypeError, "complex"),
    ("frac ragged", crystal(frac_coords=[[0, 0, 0], [0.5, 0.5]]), StructureError, "rectangular"),
    ("frac empty", crystal(frac_coords=np.zeros((0, 3)), species=[]), StructureError, "empty"),
    ("occupancy negative", crystal(occupancies=[1.0, -0.5]), StructureError, r"\(0, 1\], got -0.5"),
    ("occupancy 0", crystal(occupancies=[1.0, 0.0]), StructureError,
     "empty site should be removed"),
    ("occupancy 2", crystal(occupancies=[1.0, 2.0]), StructureError, r"\(0, 1\], got 2"),
    ("occupancy NaN", crystal(occupancies=[1.0, np.nan]), StructureError,
     "occupancies contains NaN"),
    ("occupancy bools", crystal(occupancies=[True, True]), TypeError,
     "occupancies must hold real numbers"),
    ("occupancy count", crystal(occupancies=[1.0]), StructureError, "one value per atom"),
    ("site over-full", crystal(frac_coords=[[0, 0, 0], [0, 0, 0]],
                               occupancies=[0.7, 0.6]), StructureError, "total occupancy"),
    ("b_iso negative", crystal(b_iso=[0.0, -1.0]), StructureError, "≥ 0"),
    ("b_iso NaN", crystal(b_iso=[0.0, np.nan]), StructureError, "b_iso contains NaN"),
    ("b_iso 1000", crystal(b_iso=[0.0, 1000.0]), StructureError, "MAX_B_ISO"),
    ("b_iso string", crystal(b_iso="0 0"), TypeError, "b_iso must be an array of numbers"),
    ("atoms over max_atoms",
     limited(
         crystal(frac_coords=np.zeros((11, 3)), species=["Cs"] * 11, occupancies=np.full(11, 0.05)),
         max_atoms=10), ResourceLimitError, "11 atoms exceeds the limit max_atoms"),
    ("replace NaN lattice", lambda: Crystal(CELL, FRAC, SPECIES).replace(lattice=CELL * np.nan),
     StructureError, "NaN"),
    ("atomic_number True", lambda: atomic_number(True), TypeError, "True is not an element"),
    ("atomic_number ''", lambda: atomic_number(""), ValueError, "unknown element ''")
]

# --------------------------------------------------------------------------- from_pymatgen
ROCK_SALT = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def from_pymatgen(make):
    """Crystal.from_pymatgen on what ``make()`` returns."""
    return lambda: Crystal.from_pymatgen(make())


PYMATGEN_CASES = [
    ("from_pymatgen Molecule",
     from_pymatgen(lambda: Molecule(["H", "H"], [[0, 0, 0], [0, 0, 0.74]])), TypeError,
     "get_boxed_structure"),
    ("from_pymatgen None", from_pymatgen(lambda: None), TypeError,
     "needs a pymatgen Structure, got NoneType"),
    ("from_pymatgen path string", from_pymatgen(lambda: "NaCl.cif"), TypeError,
     r"Crystal.from_cif\(path\)"),
    ("from_pymatgen pathlib.Path", from_pymatgen(lambda: Path("NaCl.cif")), TypeError, "from_cif"),
    ("from_pymatgen dict", from_pymatgen(ROCK_SALT.as_dict), TypeError, "Structure.from_dict"),
    ("from_pymatgen ase Atoms",
     from_pymatgen(lambda: Atoms("NaCl", cell=np.eye(3) * 5.64, pbc=True)), TypeError,
     "AseAtomsAdaptor"),
    ("from_pymatgen a Crystal", from_pymatgen(lambda: Crystal(CELL, FRAC, SPECIES)), TypeError,
     "already a Crystal"),
    ("from_pymatgen dummy species",
     from_pymatgen(lambda: Structure(Lattice.cubic(4), [DummySpecies("X"), "Cl"], FRAC)),
     ValueError, "'X' is not a chemical element"),
    ("from_pymatgen empty Structure", from_pymatgen(lambda: Structure(Lattice.cubic(3), [], [])),
     StructureError, "empty")
]

# --------------------------------------------------------------------------- wavelengths
WAVELENGTH_CASES = [
    ("wavelength True", lambda: resolve_wavelength(True), TypeError,
     "line name such as 'CuKa' or a number"),
    ("wavelength complex", lambda: resolve_wavelength(1.54 + 0j), TypeError, "got complex"),
    ("wavelength None", lambda: resolve_wavelength(None), TypeError, "got NoneType"),
    ("wavelength NaN", lambda: resolve_wavelength(float("nan")), ValueError,
     "wavelength must be finite"),
    ("wavelength lower-case line", lambda: resolve_wavelength("cuka"), ValueError,
     "did you mean 'CuKa'"),
    ("wavelength misspelt line", lambda: resolve_wavelength("MoKalpha"), ValueError,
     "did you mean 'MoKa'"),
    ("wavelength number as text", lambda: resolve_wavelength("1.54"), ValueError,
     "give the number 1.54 without"),
    ("wavelength 20 Å", lambda: resolve_wavelength(20.0), ValueError,
     "outside the supported X-ray range"),
    ("wavelength array", lambda: resolve_wavelength(np.array([1.54])), TypeError, "got ndarray")
]

# --------------------------------------------------------------------------- hostile CIF files
SITES = "Cs1 Cs 0 0 0 1\nCl1 Cl 0.5 0.5 0.5 1\n"


def cif_text(a="4.0", b="4.0", c="4.0", alpha="90", beta="90", gamma="90", sites=SITES, name="x",
             extra=""):
    """A CsCl CIF (P1, explicit symmetry operation) with some values replaced."""
    return (
        f"data_{name}\n{extra}_cell_length_a {a}\n_cell_length_b {b}\n_cell_length_c {c}\n"
        f"_cell_angle_alpha {alpha}\n_cell_angle_beta {beta}\n_cell_angle_gamma {gamma}\n"
        "loop_\n_symmetry_equiv_pos_as_xyz\n'x, y, z'\n"
        "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n"
        f"_atom_site_fract_z\n_atom_site_occupancy\n{sites}")


CSCL = cif_text()


def cif(content, name="x.cif"):
    """A case reading ``content`` (str, or bytes written as they are) from a file in tmp_path."""

    def case(folder):
        path = folder / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return Crystal.from_cif(path)

    return case


def on_path(make):
    """A case calling from_cif on what ``make(tmp_path)`` returns."""
    return lambda folder: Crystal.from_cif(make(folder))


def sparse_file(folder):
    path = folder / "huge.cif"
    with open(path, "wb") as stream:
        stream.truncate(int((LIMITS.max_file_mb + 1) * 2**20))  # no disk blocks written
    return path


def fifo(folder):
    os.mkfifo(folder / "pipe.cif")
    return folder / "pipe.cif"


P1_OPERATION = "loop_\n_symmetry_equiv_pos_as_xyz\n'x, y, z'\n"
GENERAL_SITES = "".join(
    f"O{i} O {0.1 + i / 1e3:.4f} {0.2 + i / 2e3:.4f} {0.3 + i / 3e3:.4f} 1\n" for i in range(300))
THOUSANDS_OF_LOOPS = "".join(f"loop_\n_x_{i}\n1\n2\n" for i in range(3000))
MAGNETIC_MODULATED = CSCL.replace(
    "data_x\n", "data_x\n_space_group_magn.name_BNS 'P 1'\n_cell_wave_vector_x 0.5\n")
CIF_CASES = [
    ("cif empty file", cif(""), ValueError, "is empty"),
    ("cif only blank lines", cif("\n   \n\t\n"), ValueError, "is empty"),
    ("cif only comments", cif("# a comment\n# and another\n"), ValueError, "holds no data block"),
    ("cif prose", cif("This is not a CIF at all.\n"), ValueError, "holds no data block"),
    ("cif truncated in loop header", cif(
        CSCL[:CSCL.index("_atom_site_fract_y")]), ValueError, "loop_"),
    ("cif truncated mid-row", cif(
        CSCL[:CSCL.index("Cl1") + 6]), ValueError, "loop_ whose values do not fill"),
    ("cif loop_ without columns", cif(CSCL + "loop_\n1 2 3\n"), ValueError, "loop_"),
    ("cif random bytes", cif(np.random.default_rng(17).bytes(4096)), ValueError, "not a text CIF"),
    ("cif NUL bytes", cif(CSCL.replace(
        "Cl1", "Cl\x001").encode()), ValueError, r"binary data \(byte 0x00 on line"),
    ("cif PNG image", cif(b"\x89PNG\r\n\x1a\n" + bytes(64)), ValueError, "not a text CIF"),
    ("cif UTF-16 with BOM", cif(CSCL.encode("utf-16")), ValueError, "UTF-16"),
    ("cif UTF-16 without BOM", cif(CSCL.encode("utf-16-le")), ValueError, "not a text CIF"),
    ("cif Shift-JIS text", cif(
        ("# " + "結晶構造" * 400 + "\n" + CSCL).encode("shift_jis")), ValueError, "not UTF-8 text"),
    ("cif 5 MB line", cif(CSCL + "_note " + "x" * 5_000_000 + "\n"), ValueError,
     "line of 5,000,006 characters"),
    ("cif 3000 blocks, no atoms", cif("".join(
        f"data_b{i}\n_cell_length_a 4\n"
        for i in range(3000))), ValueError, "none of its 3,000 data block"),
    ("cif 3000 loops, then -4 Å", cif(cif_text(a="-4.0", extra=THOUSANDS_OF_LOOPS)), ValueError,
     "_cell_length_a is -4: a cell length must be positive"),
    ("cif a = 1e308", cif(
        cif_text(a="1e308")), StructureError, "_cell_length_a is 1e\\+308 Å long, beyond MAX_CELL"),
    ("cif a = 1e-308", cif(cif_text(a="1e-308")), ValueError, "below MIN_CELL_LENGTH"),
    ("cif a = 1e999", cif(cif_text(a="1e999")), ValueError, "'1e999', not a finite number"),
    ("cif a = NaN", cif(
        cif_text(b="nan")), ValueError, "_cell_length_b is 'nan', not a finite number"),
    ("cif a = ?", cif(cif_text(c="?")), ValueError, "_cell_length_c is '\\?', not a number"),
    ("cif a = -5", cif(cif_text(a="-5")), ValueError, "must be positive"),
    ("cif a = 0", cif(cif_text(a="0")), ValueError, "must be positive"),
    ("cif a with uncertainty, negative", cif(
        cif_text(a="-4.0(2)")), ValueError, "must be positive"),
    ("cif alpha = 0", cif(cif_text(alpha="0")), ValueError, "_cell_angle_alpha is 0°"),
    ("cif gamma = 180", cif(cif_text(gamma="180")), ValueError, "strictly between 0° and 180°"),
    ("cif angles sum > 360", cif(cif_text(alpha="170", beta="170",
                                          gamma="170")), ValueError, "describe no cell"),
    ("cif angle > sum of others", cif(cif_text(alpha="150", beta="30",
                                               gamma="30")), ValueError, "describe no cell"),
    ("cif flat cell", cif(cif_text(gamma="179.9999")), ValueError, "the cell is flat"),
    ("cif no cell length b", cif(
        CSCL.replace("_cell_length_b 4.0\n",
                     "")), ValueError, r"no complete cell \(_cell_length_b is missing\)"),
    ("cif occupancy negative", cif(cif_text(sites="Cs1 Cs 0 0 0 1\nCl1 Cl 0.5 0.5 0.5 -0.5\n")),
     ValueError, r"site 'Cl1' has occupancy -0.5, outside \[0, 1\]"),
    ("cif occupancy 2", cif(cif_text(sites="Cs1 Cs 0 0 0 2\nCl1 Cl 0.5 0.5 0.5 1\n")), ValueError,
     r"site 'Cs1' has occupancy 2"),
    ("cif occupancy NaN", cif(cif_text(sites="Cs1 Cs 0 0 0 nan\nCl1 Cl 0.5 0.5 0.5 1\n")),
     ValueError, "occupancy of site 'Cs1' is 'nan'"),
    ("cif occupancy text", cif(cif_text(sites="Cs1 Cs 0 0 0 full\nCl1 Cl 0.5 0.5 0.5 1\n")),
     ValueError, "'full', not a number"),
    ("cif all occupancies 0", cif(cif_text(sites="Cs1 Cs 0 0 0 0\nCl1 Cl 0.5 0.5 0.5 0.0\n")),
     ValueError, "all its 2 atom sites have occupancy 0"),
    ("cif over-full position", cif(cif_text(sites="Cs1 Cs 0 0 0 0.7\nCl1 Cl 0 0 0 0.7\n")),
     ValueError, "total occupancy of 1.4 > 1"),
    ("cif unknown element", cif(cif_text(sites="Qq1 Qq 0 0 0 1\nCl1 Cl 0.5 0.5 0.5 1\n")),
     ValueError, "'Qq' is not a chemical element"),
    ("cif no element at all", cif(cif_text(sites="OH1 OH 0 0 0 1\nOH2 OH 0.5 0.5 0.5 1\n")),
     ValueError, "none of its atom sites could be read"),
    ("cif no atom_site loop", cif(CSCL[:CSCL.index("loop_\n_atom_site")]), ValueError,
     "none of its 1 data block.*lists atom sites"),
    ("cif no fract_y column",
     cif(
         CSCL.replace("_atom_site_fract_y\n", "").replace(" 0.5 0.5 1", " 0.5 1").replace(
             " 0 0 1", " 0 1")), ValueError, "lacks _atom_site_fract_y"),
    ("cif no label column",
     cif(CSCL.replace("_atom_site_label\n", "").replace("Cs1 ", "").replace(
         "Cl1 ", "")), ValueError, "lacks _atom_site_label"),
    ("cif unclosed text field",
     cif(CSCL.replace("loop_\n_atom_site", "_title\n;\nunclosed\nloop_\n_atom_site")), ValueError,
     "unclosed ';' text field"),
    ("cif fract text", cif(cif_text(sites="Cs1 Cs zero 0 0 1\nCl1 Cl 0.5 0.5 0.5 1\n")), ValueError,
     "_atom_site_fract_x of site 'Cs1' is 'zero', not a number"),
    ("cif fract NaN", cif(cif_text(sites="Cs1 Cs 0 nan 0 1\nCl1 Cl 0.5 0.5 0.5 1\n")), ValueError,
     "not a finite number"),
    ("cif fract 1e308", cif(cif_text(sites="Cs1 Cs 0 0 1e308 1\nCl1 Cl 0.5 0.5 0.5 1\n")),
     StructureError, "_atom_site_fract_z of site 'Cs1' is 1e\\+308, beyond MAX_FRACTIONAL"),
    ("cif incommensurate magCIF", cif(MAGNETIC_MODULATED), ValueError,
     "cannot read this kind of structure"),
    ("cif atoms over max_atoms", limited(cif(CSCL), max_atoms=1), ResourceLimitError,
     "CIF '.*x.cif': a structure of 2 atoms exceeds the limit max_atoms"),
    ("cif 300 general sites in Fm-3m",
     cif(
         cif_text(a="40", b="40", c="40", sites=GENERAL_SITES).replace(
             P1_OPERATION, "_symmetry_space_group_name_H-M 'F m -3 m'\n")), ResourceLimitError,
     "300 atom sites and 192 symmetry operation\\(s\\): up to 57,600 atoms, "
     "which exceeds the limit max_cif_atoms"),
    ("cif 20000 symmetry operations",
     cif(CSCL.replace(P1_OPERATION,
                      "loop_\n_symmetry_equiv_pos_as_xyz\n" + "'x, y, z'\n" * 20_000)),
     ResourceLimitError, "and 20000 symmetry operation"),
    ("cif symmetry operation 'x, y'", cif(CSCL.replace(
        "'x, y, z'", "'x, y'")), ValueError, "'x, y' is not a symmetry operation"),
    ("cif symmetry operation 'a, b, c'", cif(CSCL.replace(
        "'x, y, z'", "'a, b, c'")), ValueError, "not a symmetry operation"),
    ("cif symmetry operation 1/0", cif(CSCL.replace(
        "'x, y, z'", "'x+1/0, y, z'")), ValueError, "not a symmetry operation"),
    ("cif single-valued atom site",
     cif(CSCL[:CSCL.index("loop_\n_atom_site")] + "_atom_site_label Cs1\n"
         "_atom_site_fract_x 0\n_atom_site_fract_y 0\n_atom_site_fract_z 0\n"), ValueError,
     "single values, not a loop_"),
    ("cif type symbols in a shorter loop",
     cif(
         CSCL.replace("_atom_site_type_symbol\n", "").replace(" Cs 0", " 0").replace(
             " Cl 0.5", " 0.5") + "loop_\n_atom_site_type_symbol\nCs\n"), ValueError,
     "atom_site columns .* differ in length"),
    ("cif file over max_file_mb", on_path(sparse_file), ResourceLimitError,
     "exceeds the limit max_file_mb"),
    ("cif gzip bomb", limited(cif(gzip.compress(b" " * 3 * 2**20), "bomb.cif.gz"), max_file_mb=1),
     ResourceLimitError, r"decompressed \(over 1 MiB\) exceeds the limit max_file_mb"),
    ("cif truncated gzip", cif(gzip.compress(CSCL.encode())[:40],
                               "x.cif.gz"), ValueError, "damaged gzip archive"),
    ("cif damaged bz2", cif(b"BZh9" + bytes(30), "x.cif.bz2"), ValueError, "damaged bz2 archive"),
    ("cif a directory", on_path(lambda folder: folder), ValueError, "is a directory"),
    ("cif a named pipe", on_path(fifo), ValueError, "is a device or pipe"),
    ("cif missing file", on_path(lambda folder: folder / "nowhere.cif"), ValueError,
     "does not exist"),
    ("cif path None", on_path(lambda folder: None), TypeError, "needs the path of a CIF file"),
    ("cif path 42", on_path(lambda folder: 42), TypeError, "got int 42"),
    ("cif path a Structure", on_path(lambda folder: ROCK_SALT), TypeError,
     "use Crystal.from_pymatgen")
]


@pytest.mark.parametrize(
    "case_id, call, error, phrase", CONSTRUCTOR_CASES + PYMATGEN_CASES + WAVELENGTH_CASES,
    ids=[case[0] for case in CONSTRUCTOR_CASES + PYMATGEN_CASES + WAVELENGTH_CASES])
def test_bad_structure_species_or_wavelength_is_refused(case_id, call, error, phrase):
    rejects(call, error, phrase)


@pytest.mark.parametrize("case_id, case, error, phrase", CIF_CASES,
                         ids=[case[0] for case in CIF_CASES])
def test_hostile_cif_is_refused_with_its_name(case_id, case, error, phrase, tmp_path):
    caught = rejects(lambda: case(tmp_path), error, phrase)
    assert isinstance(caught, TypeError) or str(tmp_path) in str(caught)  # the file is named


def test_corpus_is_large_and_distinct():
    cases = CONSTRUCTOR_CASES + PYMATGEN_CASES + WAVELENGTH_CASES + CIF_CASES
    assert len(cases) >= 60 and len(CIF_CASES) >= 25
    assert len({case[0] for case in cases}) == len(cases)


# ------------------------------------------------------------------- what is read, and what is said
def test_pymatgen_warning_comes_back_in_our_words_with_the_file_name(tmp_path):
    path = tmp_path / "hm_only.cif"
    path.write_text(CSCL.replace(P1_OPERATION, "_symmetry_space_group_name_H-M 'P 1'\n"))
    said = rf"CIF '{re.escape(str(path))}': pymatgen: No _symmetry_equiv_pos_as_xyz type key found"
    with pytest.warns(CifWarning, match=said):
        crystal = Crystal.from_cif(path)
    assert crystal.species == ["Cs", "Cl"]


def test_clean_cif_reads_without_warning(tmp_path):
    (tmp_path / "x.cif").write_text(CSCL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(Crystal.from_cif(tmp_path / "x.cif")) == 2


def test_sites_of_occupancy_zero_are_left_out_aloud(tmp_path):
    path = tmp_path / "vacancy.cif"
    path.write_text(cif_text(sites=SITES + "Na1 Na 0.5 0 0 0\n"))
    with pytest.warns(CifWarning, match=r"1 atom site\(s\) of occupancy 0 left out \(Na1\)"):
        crystal = Crystal.from_cif(path)
    assert crystal.species == ["Cs", "Cl"]


def test_unknown_occupancy_is_read_as_full_like_pymatgen(tmp_path):
    (tmp_path / "x.cif").write_text(cif_text(sites="Cs1 Cs 0 0 0 ?\nCl1 Cl 0.5 0.5 0.5 1\n"))
    assert Crystal.from_cif(tmp_path / "x.cif").occupancies.tolist() == [1.0, 1.0]


def test_thousands_of_structures_read_the_first_quickly_and_say_so(tmp_path):
    path = tmp_path / "many.cif"
    path.write_text("".join(cif_text(a=f"{4 + i / 1000:.3f}", name=f"s{i}") for i in range(3000)))
    begin = time.perf_counter()
    with pytest.warns(CifWarning, match="it holds 3,000 structures; read the first, data_s0"):
        crystal = Crystal.from_cif(path)
    assert time.perf_counter() - begin < 5
    assert crystal.lattice[0, 0] == pytest.approx(4.0)


def test_thousands_of_loops_are_read_quickly(tmp_path):
    path = tmp_path / "loops.cif"
    path.write_text(cif_text(extra=THOUSANDS_OF_LOOPS))
    begin = time.perf_counter()
    assert len(Crystal.from_cif(path)) == 2
    assert time.perf_counter() - begin < 5


@pytest.mark.parametrize("compress, suffix", [(gzip.compress, ".cif.gz"),
                                              (bz2.compress, ".cif.bz2")])
def test_compressed_cif_reads_like_plain(compress, suffix, tmp_path):
    path = tmp_path / f"x{suffix}"
    path.write_bytes(compress(CSCL.encode()))
    assert Crystal.from_cif(path).species == ["Cs", "Cl"]


def test_stray_latin1_byte_is_replaced_aloud(tmp_path):
    path = tmp_path / "latin1.cif"
    path.write_bytes(("# Müller et al.\n" + CSCL).encode("latin-1"))
    with pytest.warns(CifWarning, match=r"1 byte\(s\) that are not UTF-8 replaced"):
        assert len(Crystal.from_cif(path)) == 2


def test_accepted_edges_of_the_constructor():
    user_lattice = CELL.copy()
    crystal = Crystal(user_lattice, FRAC, [" Cs ", np.int64(17)], b_iso=[0.0, MAX_B_ISO])
    assert crystal.species == ["Cs", "Cl"] and crystal.b_iso[1] == MAX_B_ISO
    assert user_lattice.flags.writeable  # the caller's array is copied, not frozen
    charged = Structure(Lattice.cubic(4.0), ["Cs+", "Cl-"], FRAC)
    assert Crystal.from_pymatgen(charged).species == [
        "Cs", "Cl"
    ]  # pymatgen's oxidation states: neutral atoms


# --------------------------------------------------------------------------- property: damaged CIFs
JUNK = [
    "", "-", "?", ".", "'", ";", "\n;", "loop_", "1e999", "nan", "\n", "data_", "_atom_site_label",
    "#"
]


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(CSCL)), length=st.integers(1, 40), junk=st.sampled_from(JUNK))
def test_damaged_cif_is_read_or_refused_with_a_value_error(cut, length, junk, tmp_path):
    """Any cut-and-spliced CsCl CIF gives a Crystal or our ValueError with a reason, never
    another exception."""
    path = tmp_path / "damaged.cif"
    path.write_text(CSCL[:cut] + junk + CSCL[cut + length:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CifWarning)
        try:
            Crystal.from_cif(path)
        except ValueError as error:
            assert str(path) in str(error) and "pymatgen's parser failed" not in str(error)
