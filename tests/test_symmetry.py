"""Canonical symmetry axes and strain bases: correct (invariant, orthonormal, right dimension),
named by what they are, and bit-identical for any order of operations or atoms and on any
BLAS kernel."""

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from xrdcore import datasets
from xrdcore.structure.symmetry import find_symmetry

#: Families → number of free strain directions.
FAMILY_STRAINS = {
    "cubic": 1,
    "tetragonal": 2,
    "hexagonal": 2,
    "orthorhombic": 3,
    "monoclinic": 4,
    "triclinic": 6
}
EXAMPLES = [
    "A2B_hP9_152_c_a", "A2B_tP6_136_f_a", "A2B_mP12_14_2e_e", "AB_cF8_225_a_b", "A_hP4_194_f"
]
NAME = re.compile(r"^[A-Z][a-z]?\d* \d+[a-zA-Z] [xyz]$")


def _bases(crystal):
    symmetry = find_symmetry(crystal)
    axes, names = symmetry.symmetry_axes()
    strains, strain_names = symmetry.named_strain_basis()
    return symmetry, axes, names, strains, strain_names


def test_every_prototype_has_invariant_orthonormal_bases_of_the_right_size():
    for prototype in datasets.list_prototypes():
        crystal = prototype.crystal()
        symmetry, axes, names, strains, strain_names = _bases(crystal)
        assert len(strains) == FAMILY_STRAINS[prototype.crystal_family], prototype.name
        flat = strains.reshape(len(strains), -1)
        np.testing.assert_allclose(flat @ flat.T, np.eye(len(strains)), atol=1e-14)
        a = crystal.lattice
        cartesian = np.einsum("ij,gjk,kl->gil", a.T, symmetry.rotations, np.linalg.inv(a).T)
        for strain in strains:  # C_g E C_gᵀ = E for every operation
            np.testing.assert_allclose(cartesian @ strain @ cartesian.transpose(0, 2, 1),
                                       np.broadcast_to(strain, cartesian.shape), atol=1e-12)
        if len(axes):
            flat = axes.reshape(len(axes), -1)
            np.testing.assert_allclose(flat @ flat.T, np.eye(len(axes)), atol=1e-14)
            for axis in axes:  # a symmetric field is its own Reynolds average
                np.testing.assert_allclose(symmetry.project_displacement(axis), axis, atol=1e-14)
        assert len(set(names)) == len(names) and all(NAME.match(n) for n in names), names
        assert len(set(strain_names)) == len(strain_names)


def test_the_axes_span_every_symmetric_displacement():
    """P projects a random field onto the span of the axes: the residual is zero."""
    rng = np.random.default_rng(0)
    for name in EXAMPLES:
        crystal = datasets.load_prototype(name)
        symmetry, axes, *_ = _bases(crystal)
        projected = symmetry.project_displacement(rng.standard_normal((len(crystal), 3)))
        np.testing.assert_allclose(symmetry.project_displacement(projected), projected,
                                   atol=1e-14)  # idempotent
        coefficients = np.einsum("knx,nx->k", axes, projected)
        np.testing.assert_allclose(np.einsum("k,knx->nx", coefficients, axes), projected,
                                   atol=1e-13)


def test_names_and_signs_follow_the_convention():
    quartz = _bases(datasets.load_prototype("A2B_hP9_152_c_a"))
    assert quartz[2] == ["O 6c x", "O 6c y", "O 6c z", "Si 3b y"] and quartz[4] == ["a", "c"]
    baddeleyite = _bases(datasets.load_prototype("A2B_mP12_14_2e_e"))
    assert baddeleyite[2][:4] == ["O1 4e x", "O1 4e y", "O1 4e z", "O2 4e x"
                                  ] and baddeleyite[4] == ["a", "b", "c", "β"]
    rocksalt = _bases(datasets.load_prototype("AB_cF8_225_a_b"))
    assert rocksalt[2] == [] and rocksalt[4] == ["a"]
    np.testing.assert_allclose(rocksalt[3][0],
                               np.eye(3) / np.sqrt(3), atol=1e-15)  # expansion, positive sign
    for (
            name
    ) in EXAMPLES:  # fixed sign: the named coordinate of the orbit's representative moves forward
        symmetry, axes, names, _, _ = _bases(datasets.load_prototype(name))
        for axis, axis_name in zip(axes, names):
            moved = set(np.flatnonzero(np.abs(axis).sum(axis=1)).tolist())
            orbit = next(o for o in symmetry.orbits() if set(o) == moved)
            assert (symmetry.reference.species[orbit[0]] == re.match(r"[A-Z][a-z]?",
                                                                     axis_name).group())
            assert axis[orbit[0], "xyz".index(axis_name[-1])] > 0


def _digest(crystals) -> str:
    digest = hashlib.sha256()
    for crystal in crystals:
        _, axes, names, strains, strain_names = _bases(crystal)
        digest.update(
            np.ascontiguousarray(axes).tobytes() + np.ascontiguousarray(strains).tobytes())
        digest.update(json.dumps([names, strain_names]).encode())
    return digest.hexdigest()


@pytest.mark.parametrize("name", EXAMPLES)
def test_bit_identical_for_permuted_operations(name):
    crystal = datasets.load_prototype(name)
    symmetry = find_symmetry(crystal)
    reference = (symmetry.symmetry_axes(), symmetry.named_strain_basis())
    rng = np.random.default_rng(1)
    for _ in range(3):
        order = rng.permutation(len(symmetry.rotations))
        shuffled = dataclasses.replace(symmetry, rotations=symmetry.rotations[order],
                                       translations=symmetry.translations[order],
                                       permutations=symmetry.permutations[order])
        (axes, names), (strains, strain_names) = (shuffled.symmetry_axes(),
                                                  shuffled.named_strain_basis())
        assert axes.tobytes() == reference[0][0].tobytes() and names == reference[0][1]
        assert strains.tobytes() == reference[1][0].tobytes() and strain_names == reference[1][1]
        field = rng.standard_normal((len(crystal), 3))
        assert (shuffled.project_displacement(field).tobytes() == symmetry.project_displacement(
            field).tobytes())


@pytest.mark.parametrize("name", EXAMPLES)
def test_bit_identical_for_atoms_in_another_order(name):
    crystal = datasets.load_prototype(name)
    _, axes, names, strains, strain_names = _bases(crystal)
    order = np.random.default_rng(2).permutation(len(crystal))
    shuffled = crystal.replace(frac_coords=crystal.frac_coords[order],
                               species=[crystal.species[j] for j in order])
    _, shuffled_axes, shuffled_names, shuffled_strains, shuffled_strain_names = _bases(shuffled)
    assert shuffled_names == names and shuffled_strain_names == strain_names
    assert shuffled_axes.tobytes() == axes[:, order].tobytes()
    assert shuffled_strains.tobytes() == strains.tobytes()


def test_bit_identical_under_another_blas_kernel():
    """A subprocess with OpenBLAS forced to its oldest x86 kernels (no AVX, no FMA) and numba
    compiling for a generic CPU (or, in the portability run, with the native ones) builds the
    same bytes for every prototype."""
    if not any("openblas" in str(info.get("internal_api", "")) for info in _threadpool_info()):
        pytest.skip("numpy is not linked against OpenBLAS here")
    script = ("import json, sys; sys.path.insert(0, %r); "
              "from test_symmetry import _digest, _threadpool_info; "
              "from xrdcore import datasets; "
              "print(json.dumps([_digest(p.crystal() for p in datasets.list_prototypes()), "
              "[i.get('architecture') for i in _threadpool_info()]]))" % os.path.dirname(__file__))
    env = dict(os.environ)
    if "OPENBLAS_CORETYPE" in env:  # the portability run: compare with the native kernels instead
        del env["OPENBLAS_CORETYPE"]
        env.pop("NUMBA_CPU_NAME", None)
    else:
        env.update(OPENBLAS_CORETYPE="Prescott", NUMBA_CPU_NAME="generic")
    output = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                            check=True)
    digest, architectures = json.loads(output.stdout.strip().splitlines()[-1])
    assert architectures != [i.get("architecture")
                             for i in _threadpool_info()]  # the kernel really changed
    assert digest == _digest(p.crystal() for p in datasets.list_prototypes())


def _threadpool_info():
    import numpy  # noqa: F401  (loads its BLAS)
    from threadpoolctl import threadpool_info

    return threadpool_info()
