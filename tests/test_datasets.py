"""The bundled AFLOW prototype library and example structures."""

from collections import Counter

import numpy as np
import pytest

from xrdcore import Crystal, datasets


def test_library_size_and_coverage():
    protos = datasets.list_prototypes()
    assert len(protos) == 288
    assert len({p.name for p in protos}) == 288
    assert len({p.space_group for p in protos}) == 100
    assert {p.crystal_system for p in protos} == set(datasets.CRYSTAL_SYSTEMS)
    assert min(p.num_atoms for p in protos) == 1 and max(p.num_atoms for p in protos) == 105


def test_study_set_is_the_250_small_prototypes_stratified_by_family():
    study = datasets.study_set()
    assert len(study) == 250
    assert all(p.num_atoms <= 20 for p in study)
    families = [p.crystal_family for p in study]
    assert families == sorted(families, key=datasets.CRYSTAL_FAMILIES.index)
    assert set(families) == set(datasets.CRYSTAL_FAMILIES)


def test_study_subset_is_balanced_and_seeded():
    small = datasets.study_set(per_family=3, seed=1)
    counts = Counter(p.crystal_family for p in small)
    assert all(counts[f] == 3 for f in datasets.CRYSTAL_FAMILIES)
    assert [p.name for p in small] == [p.name for p in datasets.study_set(per_family=3, seed=1)]
    assert [p.name for p in small] != [p.name for p in datasets.study_set(per_family=3, seed=2)]


def test_metadata_of_a_known_prototype():
    rocksalt = datasets.get_prototype("AB_cF8_225_a_b")
    assert rocksalt.strukturbericht == "B1"
    assert "Rock Salt" in rocksalt.mineral
    assert rocksalt.space_group == 225 and rocksalt.crystal_system == "cubic"
    assert rocksalt.pearson == "cF8"  # conventional cell: 8 atoms
    assert rocksalt.num_atoms == 2  # the library stores the primitive cell
    assert "Mehl2017" in rocksalt.reference or "Hicks" in rocksalt.reference
    crystal = rocksalt.crystal()
    assert isinstance(crystal, Crystal) and len(crystal) == 2


def test_space_group_matches_spglib():
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    for proto in datasets.study_set(per_family=2, seed=0):
        assert (SpacegroupAnalyzer(proto.structure(),
                                   symprec=1e-3).get_space_group_number() == proto.space_group)


def test_repeated_labels_get_suffixes():
    names = [p.name for p in datasets.list_prototypes() if p.aflow_label == "A_cF4_225_a"]
    assert names == ["A_cF4_225_a"]
    repeated = [p.name for p in datasets.list_prototypes() if p.aflow_label == "A_hR2_166_c"]
    assert repeated == ["A_hR2_166_c-001", "A_hR2_166_c-002", "A_hR2_166_c-003"]


@pytest.mark.parametrize("filters", [
    dict(crystal_family="hexagonal"),
    dict(crystal_system="trigonal"),
    dict(space_group=225),
    dict(max_atoms=4)
])
def test_filters(filters):
    selected = datasets.list_prototypes(**filters)
    assert selected
    for proto in selected:
        if "crystal_family" in filters:
            assert proto.crystal_family == "hexagonal"
        if "crystal_system" in filters:
            assert 143 <= proto.space_group <= 167
        if "space_group" in filters:
            assert proto.space_group == 225
        if "max_atoms" in filters:
            assert proto.num_atoms <= 4


def test_bad_names_and_filters():
    with pytest.raises(KeyError, match="did you mean"):
        datasets.get_prototype("A_hR2_166_c")
    with pytest.raises(ValueError, match="unknown crystal family"):
        datasets.list_prototypes(crystal_family="trigonal")
    with pytest.raises(KeyError, match="no example structure"):
        datasets.load_example("Unobtainium")
    with pytest.raises(ValueError, match="1 … 230"):
        datasets.crystal_system(231)


def test_examples_load():
    names = datasets.example_names()
    assert "Si" in names and "LiFePO4" in names
    si = datasets.load_example("Si")
    assert si.species == ["Si", "Si"]
    assert np.all(np.isfinite(si.frac_coords))


def test_book_data_finds_shipped_tables_from_any_folder(tmp_path, monkeypatch):
    from xrdcore.structure.datasets import book_data, book_data_names

    monkeypatch.chdir(tmp_path)
    names = book_data_names()
    assert "retrieval_full.parquet" in names and "retrieval_full.config.json" in names
    path = book_data("retrieval_full.parquet")
    assert path.is_absolute() and path.is_file() and path.parent.name == "data"
    with pytest.raises(FileNotFoundError, match="retrieval_ful.parquet.*choose one of"):
        book_data("retrieval_ful.parquet")


def test_the_package_declares_its_shipped_tables():
    """pyproject.toml packages xrdcore/data/* (so an installed xrdcore has the tables)."""
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())
    assert "data/*" in config["tool"]["setuptools"]["package-data"]["xrdcore"]
