"""Benchmark: cost of value + exact gradient vs value only, vs finite differences (and torch
autodiff if installed).

Same machine conventions as bench_peaks.py: one run, warm, best of interleaved repeats.
Loss: cosine on a 10–90° Cu Kα grid (0.02° steps), Gaussian FWHM 0.1°, target a perturbed
copy (1 % strain, 0.05 Å displacements). Finite differences = central differences over all
9 + 3N parameters, 2(9 + 3N) loss evaluations, timed directly for 8 and 64 atoms.
"""

from __future__ import annotations

import time

import numpy as np
from bench_peaks import best_times, structures

from xrdcore import Crystal, Diffractometer
from xrdcore.gradients import loss_and_grad, loss_value

OPTIONS = dict(metric="cosine", fwhm=0.1)


def perturbed(crystal: Crystal, seed=1) -> Crystal:
    rng = np.random.default_rng(seed)
    lattice = crystal.lattice @ (np.eye(3) + 0.01 * rng.standard_normal((3, 3)))
    displacement = rng.normal(0, 0.05 / np.sqrt(3), crystal.frac_coords.shape) @ np.linalg.inv(
        crystal.lattice)
    return crystal.replace(lattice=lattice, frac_coords=crystal.frac_coords + displacement)


def finite_difference_time(crystal, target, diffractometer, step=1e-6) -> float:
    start = time.perf_counter()
    for name in ("lattice", "frac_coords"):
        values = getattr(crystal, name)
        for index in np.ndindex(values.shape):
            for sign in (1, -1):
                shifted = values.copy()
                shifted[index] += sign * step
                loss_value(crystal.replace(**{name: shifted}), target, diffractometer, **OPTIONS)
    return time.perf_counter() - start


def torch_comparison(crystal, target, diffractometer, xrdcore_time):
    """Time torch.autograd on the same loss and compare its gradient with xrdcore's."""
    from torch_reference import TorchCosineLoss

    setup = diffractometer.profile_setup(fwhm=OPTIONS["fwhm"])
    hkl, _ = diffractometer.enumerate_hkl(crystal.lattice,
                                          *diffractometer.g_window(setup.two_theta_range))
    reference = TorchCosineLoss(crystal, hkl, diffractometer.wavelength, setup.grid, target,
                                OPTIONS["fwhm"])
    ours = loss_and_grad(crystal, target, diffractometer, **OPTIONS)
    theirs = reference.loss_and_grad(crystal.lattice, crystal.frac_coords)
    difference = max(
        np.abs(ours.d_lattice - theirs[1]).max() / np.abs(theirs[1]).max(),
        np.abs(ours.d_frac - theirs[2]).max() / np.abs(theirs[2]).max())
    torch_time = best_times(
        {"torch": lambda: reference.loss_and_grad(crystal.lattice, crystal.frac_coords)},
        repeats=3)["torch"]
    return f"{torch_time * 1e3:.1f} | {torch_time / xrdcore_time:.0f}× | {difference:.1e} |"


def main():
    try:
        import torch

        torch_header, torch_rule = (
            f" torch {torch.__version__} autograd, dense (ms) | torch / xrdcore "
            "| max relative gradient difference |", "---|---|---|")
    except ImportError:
        torch = None
        torch_header, torch_rule = "", ""
    diffractometer = Diffractometer("CuKa", (10, 90))
    print("| atoms | reflections | value (ms) | value + gradient (ms) | ratio "
          f"| finite differences (ms) | FD / (value + gradient) |{torch_header}")
    print(f"|---|---|---|---|---|---|---|{torch_rule}")
    for n_atoms, structure in structures().items():
        if n_atoms < 8:
            continue
        crystal = Crystal.from_pymatgen(structure)
        target = diffractometer.pattern(perturbed(crystal), fwhm=OPTIONS["fwhm"])
        times = best_times({
            "value": lambda: loss_value(crystal, target, diffractometer, **OPTIONS),
            "gradient": lambda: loss_and_grad(crystal, target, diffractometer, **OPTIONS)
        })
        n_parameters = 9 + 3 * len(crystal)
        if n_atoms <= 64:
            fd = finite_difference_time(crystal, target, diffractometer)
            fd_text = f"{fd * 1e3:.0f}"
        else:
            fd = 2 * n_parameters * times["value"]
            fd_text = f"≈{fd * 1e3:.0f} (2·{n_parameters} × value)"
        n_reflections = len(
            diffractometer.reflections(crystal,
                                       diffractometer.profile_setup(fwhm=0.1).two_theta_range).g)
        torch_text = (f" {torch_comparison(crystal, target, diffractometer, times['gradient'])}"
                      if torch else "")
        print(f"| {n_atoms} | {n_reflections} | {times['value'] * 1e3:.2f} "
              f"| {times['gradient'] * 1e3:.2f} "
              f"| {times['gradient'] / times['value']:.2f}× | {fd_text} "
              f"| {fd / times['gradient']:.0f}× |{torch_text}")
    if torch is None:
        print("\ntorch is not installed: the autodiff comparison is skipped "
              "(pip install torch==2.13.0 to run it).")


if __name__ == "__main__":
    main()
