"""The JAX peer of the benchmarks (benchmarks/jax_peer.py, autodiff of an independent
implementation) against xrdcore's hand-written adjoints, single and batched, to 1e-10."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
jax_peer = pytest.importorskip("jax_peer", reason="the JAX peer needs the bench extra (jax)")

from xrdcore import Diffractometer, datasets  # noqa: E402
from xrdcore.batch import BatchLoss  # noqa: E402
from xrdcore.gradients import loss_and_grad, reflection_set  # noqa: E402

XRD = Diffractometer("CuKa", (15, 70), backend="cpu")


def relative(ours, theirs):
    return np.abs(np.asarray(ours) - theirs).max() / np.abs(theirs).max()


@pytest.mark.parametrize("name", ["SiO2", "LiFePO4"])
def test_single_gradient_agrees_with_jax(name, rng):
    truth = datasets.load_example(name)
    start = truth.replace(
        lattice=truth.lattice @ (np.eye(3) + 0.01 * rng.standard_normal((3, 3))),
        frac_coords=truth.frac_coords + 0.01 * rng.standard_normal(truth.frac_coords.shape))
    target = XRD.pattern(truth, fwhm=0.1)
    setup = XRD.profile_setup(fwhm=0.1)
    reflections = reflection_set(XRD, start.lattice, setup.two_theta_range)
    ours = loss_and_grad(start, target, XRD, fwhm=0.1, reflections=reflections)
    peer = jax_peer.JaxCosineLoss(start, reflections.hkl, XRD.wavelength, setup.grid, target, 0.1)
    value, d_lattice, d_frac = peer.value_and_grad(start.lattice, start.frac_coords)
    assert ours.loss == pytest.approx(value, rel=1e-10)
    assert relative(ours.d_lattice, d_lattice) < 1e-10
    assert relative(ours.d_frac, d_frac) < 1e-10


@pytest.mark.parametrize("mode", ["vmap", "map"])
def test_batch_gradient_agrees_with_jax(mode, rng):
    truth = datasets.load_example("SiO2")
    target = XRD.pattern(truth, fwhm=0.1)
    batch = BatchLoss(truth, target, XRD, fwhm=0.1)
    lattices = truth.lattice @ (np.eye(3) + 0.005 * rng.standard_normal((5, 3, 3)))
    coords = truth.frac_coords + 0.01 * rng.standard_normal((5, *truth.frac_coords.shape))
    peer = jax_peer.JaxCosineLoss(truth, batch.reflections.hkl, XRD.wavelength, batch.setup.grid,
                                  batch.target, 0.1)
    losses, d_lattice, d_frac = batch(lattices, coords)
    their_losses, their_lattice, their_frac = peer.batched(lattices, coords, mode, chunk=2)
    np.testing.assert_allclose(losses, their_losses, rtol=1e-10)
    assert relative(d_lattice, their_lattice) < 1e-10 and relative(d_frac, their_frac) < 1e-10
