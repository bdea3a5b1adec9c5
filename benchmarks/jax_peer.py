"""The same loss written in JAX, as a researcher would write it today: ``jit`` +
``value_and_grad``, a windowed Gaussian profile (fixed-size windows, scatter-add), float64.

A peer for speed (benchmarks/bench_jax.py) and an independent check of xrdcore's
hand-written adjoints (tests/test_jax_peer.py). JAX is in the ``bench`` extra only, never a
dependency of xrdcore. The model is xrdcore's: pymatgen's form factors, exp(−B s²),
Lorentz-polarisation (1 + cos² 2θ)/(sin² θ cos θ), the Friedel factor 2, a unit-area
Gaussian of fixed FWHM cut at ``window`` FWHMs, the cosine loss; the reflections are a fixed
hkl list (an :class:`xrdcore.gradients.ReflectionSet`), as xrdcore uses in a descent.
"""

from __future__ import annotations

import math

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402  (x64 must be switched on first)
import numpy as np  # noqa: E402

from xrdcore.diffraction import scatterer_types  # noqa: E402
from xrdcore.physics.scattering import FORM_FACTOR_PREFACTOR  # noqa: E402


class JaxCosineLoss:
    """``loss(lattice (3, 3), frac_coords (N, 3))`` for a fixed composition, hkl set, grid and
    target; ``value_and_grad`` returns (loss, dL/dA, dL/dx), jitted; ``batched`` the same
    over a leading batch axis, with ``jax.vmap`` or ``jax.lax.map`` in chunks."""

    def __init__(self, crystal, hkl, wavelength, grid, target, fwhm, window=5.0):
        scatterer_type, type_z, type_coeffs, type_b = scatterer_types(crystal)
        grid = np.asarray(grid, dtype=float)
        step = float(grid[1] - grid[0])
        if not np.allclose(np.diff(grid), step, rtol=1e-9, atol=0):
            raise ValueError("the JAX peer's windows need a uniform 2θ grid")
        self.fwhm, self.window = float(fwhm), float(window)
        half = int(math.ceil(window * fwhm / step)) + 1  # grid points each side of the centre
        consts = dict(
            z=jnp.asarray(type_z[scatterer_type]),
            a=jnp.asarray(type_coeffs[scatterer_type][..., 0]),  # (N, 4)
            b=jnp.asarray(type_coeffs[scatterer_type][..., 1]),
            debye_waller=jnp.asarray(type_b[scatterer_type]),
            occupancy=jnp.asarray(crystal.occupancies),
            hkl=jnp.asarray(np.asarray(hkl, dtype=float)),
            grid=jnp.asarray(grid),
            target=jnp.asarray(target, dtype=float),
            offsets=jnp.arange(-half, half + 1))
        sigma = fwhm / (2 * math.sqrt(2 * math.log(2)))
        grid0, n_grid, cut = float(grid[0]), len(grid), window * fwhm

        def loss(lattice, frac_coords):
            c = consts
            g = jnp.linalg.norm(c["hkl"] @ jnp.linalg.inv(lattice).T, axis=1)  # (M,)
            s2 = (g / 2)**2
            f = c["z"] - FORM_FACTOR_PREFACTOR * s2[:, None] * jnp.sum(
                c["a"] * jnp.exp(-c["b"] * s2[:, None, None]), axis=2)
            weight = f * jnp.exp(-c["debye_waller"] * s2[:, None]) * c["occupancy"]  # (M, N)
            phase = 2 * jnp.pi * c["hkl"] @ frac_coords.T
            real = jnp.sum(weight * jnp.cos(phase), axis=1)
            imag = jnp.sum(weight * jnp.sin(phase), axis=1)
            sin_theta = wavelength * g / 2
            u = sin_theta**2
            lorentz_polarization = (1 + (1 - 2 * u)**2) / (u * jnp.sqrt(1 - u))
            intensity = 2 * (real**2 + imag**2) * lorentz_polarization
            two_theta = jnp.degrees(2 * jnp.arcsin(sin_theta))
            nearest = jnp.round((two_theta - grid0) / step).astype(jnp.int32)
            index = nearest[:, None] + c["offsets"][None, :]  # (M, window points)
            offset = c["grid"][jnp.clip(index, 0, n_grid - 1)] - two_theta[:, None]
            inside = (index >= 0) & (index < n_grid) & (jnp.abs(offset) <= cut)
            shape = jnp.where(inside, jnp.exp(-0.5 * (offset / sigma)**2),
                              0.0) / (sigma * math.sqrt(2 * math.pi))
            profile = (jnp.zeros(n_grid).at[index.ravel()].add((intensity[:, None] * shape).ravel(),
                                                               mode="drop"))
            cosine = (profile @ c["target"] /
                      (jnp.linalg.norm(profile) * jnp.linalg.norm(c["target"])))
            return 1 - cosine

        self._single = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        self._vmapped = jax.jit(jax.vmap(jax.value_and_grad(loss, argnums=(0, 1))))
        self._loss = loss
        self._mapped_by_chunk: dict = {}

    def value_and_grad(self, lattice, frac_coords):
        """(loss, dL/dA (3, 3), dL/dx (N, 3)) as numpy, after the computation has finished."""
        value, (d_lattice, d_frac) = self._single(jnp.asarray(lattice), jnp.asarray(frac_coords))
        return float(value), np.asarray(d_lattice), np.asarray(d_frac)

    def batched(self, lattices, coords, mode: str = "vmap", chunk: int = 128):
        """Losses (B,) and gradients (B, 3, 3), (B, N, 3) of a batch: ``mode`` "vmap" (one
        vectorised call) or "map" (``lax.map`` over chunks of ``chunk`` structures)."""
        lattices, coords = jnp.asarray(lattices), jnp.asarray(coords)
        if mode == "vmap":
            value, (d_lattice, d_frac) = self._vmapped(lattices, coords)
        else:
            value, (d_lattice, d_frac) = self._mapped(chunk)(lattices, coords)
        return np.asarray(value), np.asarray(d_lattice), np.asarray(d_frac)

    def _mapped(self, chunk: int):
        """The jitted ``lax.map`` over chunks of ``chunk`` structures (compiled once per size)."""
        if chunk not in self._mapped_by_chunk:
            step = jax.value_and_grad(self._loss, argnums=(0, 1))
            self._mapped_by_chunk[chunk] = jax.jit(
                lambda a, x: jax.lax.map(lambda ax: step(*ax), (a, x), batch_size=chunk))
        return self._mapped_by_chunk[chunk]
