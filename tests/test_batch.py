"""Batched loss and gradient: CPU kernels vs the single-structure path, CUDA kernels vs the
CPU kernels (in numba's simulator when no GPU is present; small sizes keep it fast)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import random_triclinic

from xrdcore import Diffractometer
from xrdcore.batch import BatchLoss
from xrdcore.gradients import loss_and_grad
from xrdcore.kernels import cuda_available

SMALL = dict(two_theta_range=(20, 40), step=0.05)
FLOAT32_TOLERANCE = 1e-4  # relative to the largest component; documented in xrdcore.batch


def batch_case(seed=0, n_atoms=3, n_batch=3):
    rng = np.random.default_rng(seed)
    crystal = random_triclinic(rng, n_atoms)
    target = Diffractometer(backend="cpu", **SMALL).pattern(
        crystal.replace(lattice=crystal.lattice * 1.01), fwhm=0.3)
    lattices = np.stack([
        crystal.lattice @ (np.eye(3) + 0.005 * rng.standard_normal((3, 3))) for _ in range(n_batch)
    ])
    coords = np.stack([
        crystal.frac_coords + 0.01 * rng.standard_normal(crystal.frac_coords.shape)
        for _ in range(n_batch)
    ])
    return crystal, target, lattices, coords


def relative_difference(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max()


@pytest.mark.parametrize("metric", ["cosine", "mse", "wasserstein"])
def test_cpu_batch_equals_single_structure_path(metric):
    crystal, target, lattices, coords = batch_case()
    diffractometer = Diffractometer(backend="cpu", **SMALL)
    batch = BatchLoss(crystal, target, diffractometer, metric=metric, fwhm=0.3)
    losses, d_lattices, d_fracs = batch(lattices, coords)
    for b in range(len(lattices)):
        single = loss_and_grad(crystal.replace(lattice=lattices[b],
                                               frac_coords=coords[b]), target, diffractometer,
                               metric=metric, fwhm=0.3, reflections=batch.reflections)
        assert losses[b] == pytest.approx(single.loss, rel=1e-10)
        assert relative_difference(d_lattices[b], single.d_lattice) < 1e-10
        assert relative_difference(d_fracs[b], single.d_frac) < 1e-10


def test_padding_atoms_with_zero_occupancy_changes_nothing():
    crystal, target, lattices, coords = batch_case(1)
    padded_crystal = crystal.replace(
        frac_coords=np.vstack([crystal.frac_coords, [[0.1, 0.2, 0.3]]]), species=np.append(
            crystal.atomic_numbers, 8), occupancies=np.append(crystal.occupancies, 1.0),
        b_iso=np.append(crystal.b_iso, 0.0))
    diffractometer = Diffractometer(backend="cpu", **SMALL)
    plain = BatchLoss(crystal, target, diffractometer, fwhm=0.3)(lattices, coords)
    padded_coords = np.concatenate([coords, np.full((len(coords), 1, 3), 0.25)], axis=1)
    occupancies = np.hstack([np.ones((len(coords), len(crystal))), np.zeros((len(coords), 1))])
    padded = BatchLoss(padded_crystal, target, diffractometer, fwhm=0.3)(lattices, padded_coords,
                                                                         occupancies)
    np.testing.assert_allclose(padded[0], plain[0], rtol=1e-12)
    np.testing.assert_allclose(padded[1], plain[1], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(padded[2][:, :-1], plain[2], rtol=1e-10, atol=1e-14)
    assert np.all(padded[2][:, -1] == 0)


needs_cuda = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU and the simulator is off")


@needs_cuda
@pytest.mark.parametrize("metric", ["cosine", "spectral_entropy"])  # device metric, host metric
def test_cuda_equals_cpu_in_float64(metric):
    crystal, target, lattices, coords = batch_case(2, n_batch=2)
    cpu = BatchLoss(crystal, target, Diffractometer(backend="cpu", **SMALL), metric=metric,
                    fwhm=0.3)
    gpu = BatchLoss(crystal, target, Diffractometer(backend="cuda", **SMALL), metric=metric,
                    fwhm=0.3)
    np.testing.assert_allclose(gpu.patterns(lattices, coords), cpu.patterns(lattices, coords),
                               rtol=1e-10, atol=1e-12)
    for ours, reference in zip(gpu(lattices, coords), cpu(lattices, coords)):
        assert relative_difference(ours, reference) < 1e-10


@needs_cuda
def test_cuda_float32_within_documented_tolerance():
    crystal, target, lattices, coords = batch_case(3, n_batch=2)
    reference = BatchLoss(crystal, target, Diffractometer(backend="cpu", **SMALL),
                          fwhm=0.3)(lattices, coords)
    single = BatchLoss(crystal, target, Diffractometer(backend="cuda", **SMALL), fwhm=0.3,
                       dtype=np.float32)(lattices, coords)
    for ours, expected in zip(single, reference):
        assert relative_difference(ours, expected) < FLOAT32_TOLERANCE


@needs_cuda
def test_device_resident_descent_equals_cpu_descent():
    crystal, target, lattices, coords = batch_case(4, n_batch=2)
    options = dict(steps=3, lattice_rate=1e-3, frac_rate=1e-4)
    cpu = BatchLoss(crystal, target, Diffractometer(backend="cpu", **SMALL), fwhm=0.3).descend(
        lattices, coords, **options)
    gpu = BatchLoss(crystal, target, Diffractometer(backend="cuda", **SMALL), fwhm=0.3).descend(
        lattices, coords, **options)
    for ours, reference in zip(gpu, cpu):
        assert relative_difference(ours, reference) < 1e-10
    assert cpu[2].shape == (4, 2)
    assert np.all(cpu[2][-1] < cpu[2][0])  # small steps downhill lower the loss


def test_cuda_without_gpu_names_the_simulator():
    code = "from xrdcore import Diffractometer; Diffractometer(backend='cuda')"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    if os.path.exists("/dev/nvidia0"):
        pytest.skip("a GPU is present")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert "NUMBA_ENABLE_CUDASIM=1" in result.stderr and "no CUDA GPU" in result.stderr


def test_auto_backend_never_picks_the_simulator():
    assert Diffractometer(
        backend="auto").backend == ("cuda" if os.path.exists("/dev/nvidia0") else "cpu")
    with pytest.raises(ValueError, match="unknown backend"):
        Diffractometer(backend="gpu")


def test_batch_errors():
    crystal, target, lattices, coords = batch_case(5)
    batch = BatchLoss(crystal, target, Diffractometer(backend="cpu", **SMALL), fwhm=0.3)
    with pytest.raises(ValueError, match="margin"):
        batch(lattices * 1.2, coords)
    with pytest.raises(ValueError, match=r"\(B, 3, 3\)"):
        batch(lattices[0], coords)
    with pytest.raises(ValueError, match="frac_coords must have shape"):
        batch(lattices, coords[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        batch(lattices, np.full_like(coords, np.nan))
    with pytest.raises(ValueError, match="fixed FWHM"):
        BatchLoss(crystal, target, Diffractometer(backend="cpu", **SMALL), fwhm=(0.1, 0.0, 0.1))
    with pytest.raises(ValueError, match="dtype"):
        BatchLoss(crystal, target, Diffractometer(backend="cpu", **SMALL), dtype=np.int32)


def test_cuda_kernels_compile_for_a_real_gpu():
    """The simulator never compiles; build every kernel to PTX (compute capability 8.0) with
    libNVVM to catch code that would not build for a GPU. Skipped where libNVVM is absent."""
    from pathlib import Path

    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    script = Path(__file__).with_name("compile_cuda_kernels.py")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                            timeout=900)
    if "NvvmSupportError" in result.stderr or "libNVVM cannot be found" in result.stderr:
        pytest.skip("libNVVM (CUDA toolkit) is not installed")
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.count("compiled") == 14
