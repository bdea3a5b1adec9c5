"""The same loss written in torch (CPU), differentiated by torch.autograd: an independent
reference for xrdcore's hand-written adjoints, used by bench_gradients.py when torch is
installed (it is not a dependency: `pip install torch==2.13.0`).

Dense profile (every reflection at every grid point; the Gaussian tails xrdcore cuts at
5 FWHM are below 1e-29 of a peak height) and the cosine loss.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from xrdcore.diffraction import scatterer_types
from xrdcore.physics.scattering import FORM_FACTOR_PREFACTOR

torch.set_default_dtype(torch.float64)


class TorchCosineLoss:
    """loss(lattice, frac_coords) for a fixed composition, hkl set, grid and target."""

    def __init__(self, crystal, hkl, wavelength, grid, target, fwhm):
        scatterer_type, type_z, type_coeffs, type_b = scatterer_types(crystal)
        self.z = torch.tensor(type_z[scatterer_type])
        self.coeffs = torch.tensor(type_coeffs[scatterer_type])  # (N, 4, 2)
        self.b = torch.tensor(type_b[scatterer_type])
        self.occupancy = torch.tensor(crystal.occupancies)
        self.hkl = torch.tensor(np.asarray(hkl, dtype=float))
        self.wavelength = wavelength
        self.grid = torch.tensor(grid)
        self.target = torch.tensor(target)
        self.sigma = fwhm / (2 * math.sqrt(2 * math.log(2)))

    def __call__(self, lattice, frac_coords):
        metric_inverse = torch.linalg.inv(lattice @ lattice.T)
        g = torch.sqrt(torch.einsum("ma,ab,mb->m", self.hkl, metric_inverse, self.hkl))
        s2 = (g / 2)**2  # (M,)
        a, b = self.coeffs[..., 0], self.coeffs[..., 1]  # (N, 4)
        f = self.z - FORM_FACTOR_PREFACTOR * s2[:, None] * torch.sum(
            a * torch.exp(-b * s2[:, None, None]), dim=2)
        weight = f * torch.exp(-self.b * s2[:, None]) * self.occupancy  # (M, N)
        phase = 2 * math.pi * self.hkl @ frac_coords.T
        real = torch.sum(weight * torch.cos(phase), dim=1)
        imag = torch.sum(weight * torch.sin(phase), dim=1)
        sin_theta = self.wavelength * g / 2
        theta = torch.asin(sin_theta)
        lorentz_polarization = (1 + torch.cos(2 * theta)**2) / (sin_theta**2 * torch.cos(theta))
        intensity = 2 * (real**2 + imag**2) * lorentz_polarization
        two_theta = torch.rad2deg(2 * theta)
        offsets = (self.grid[:, None] - two_theta[None, :]) / self.sigma
        profile = torch.exp(-0.5 * offsets**2) @ intensity / (self.sigma * math.sqrt(2 * math.pi))
        cosine = (profile @ self.target /
                  (torch.linalg.norm(profile) * torch.linalg.norm(self.target)))
        return 1 - cosine

    def loss_and_grad(self, lattice, frac_coords):
        lattice = torch.tensor(lattice, requires_grad=True)
        frac_coords = torch.tensor(frac_coords, requires_grad=True)
        loss = self(lattice, frac_coords)
        loss.backward()
        return float(loss.detach()), lattice.grad.numpy(), frac_coords.grad.numpy()
