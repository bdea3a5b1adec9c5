"""Benchmark: xrdcore against the same loss written in JAX (benchmarks/jax_peer.py), value +
gradient, single calls and batches; gradients checked to 1e-10 before anything is timed.

Single calls: the bench_peaks structures (2, 8, 64, 200 atoms), each 1 % strained and 0.05 Å
displaced from the target's structure; both sides use the same fixed reflection list (a
ReflectionSet with a 5 % margin, as a descent does) and `loss_and_grad` / `jit(value_and_grad)`.
Batches: rutile (6 atoms) and its 2×2×2 supercell (48), copies strained 0.5 % and displaced
0.01 (fractional), B = 1, 64, 1024: `BatchLoss` against `jax.vmap` and `jax.lax.map` in chunks
of 128. Cosine loss, Cu Kα 10–90° in 0.02° steps, Gaussian FWHM 0.1°, float64 everywhere,
both sides on all cores. Warm (after JIT on both sides), best of interleaved repeats.

Writes the rows to xrdcore/data/engine_speed.csv (chapter 3 reads it) and prints markdown
tables plus the issue's targets, each with its measured value.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import jax
import numpy as np
from bench_batch import doubled, workload, write_results
from bench_gradients import perturbed
from bench_peaks import best_times, structures
from jax_peer import JaxCosineLoss

from xrdcore import Crystal, Diffractometer, datasets
from xrdcore.batch import BatchLoss
from xrdcore.gradients import loss_and_grad, loss_value, reflection_set

FWHM = 0.1
TOLERANCE = 1e-10  # largest relative gradient difference (to the largest component) accepted
BATCH_SIZES = (1, 64, 1024)
CHUNK = 128
RESULTS_CSV = Path(__file__).parents[1] / "xrdcore" / "data" / "engine_speed.csv"
FIELDS = ("date", "machine", "comparison", "structure", "atoms", "batch", "xrdcore_ms", "peer",
          "peer_ms", "peer_over_xrdcore", "max_rel_gradient_difference")


def relative_difference(ours, theirs) -> float:
    """Largest |difference| of each gradient array relative to that array's largest entry."""
    return max(
        float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(b).max())
        for a, b in zip(ours, theirs))


def checked(label: str, difference: float) -> float:
    if not difference <= TOLERANCE:
        raise SystemExit(f"{label}: JAX and xrdcore gradients differ by {difference:.1e} "
                         f"(> {TOLERANCE}); not timed")
    return difference


def single_rows(diffractometer, machine) -> list[dict]:
    rows = []
    print("### Single calls, value + gradient (ms)\n")
    print("| atoms | reflections | xrdcore value | xrdcore value + gradient | ratio "
          "| JAX value + gradient "
          "| JAX / xrdcore | max rel. gradient difference |\n"
          "|---|---|---|---|---|---|---|---|")
    setup = diffractometer.profile_setup(fwhm=FWHM)
    for atoms, structure in structures().items():
        truth = Crystal.from_pymatgen(structure)
        start = perturbed(truth)
        target = diffractometer.pattern(truth, fwhm=FWHM)
        reflections = reflection_set(diffractometer, start.lattice, setup.two_theta_range)
        peer = JaxCosineLoss(start, reflections.hkl, diffractometer.wavelength, setup.grid, target,
                             FWHM)
        ours = loss_and_grad(start, target, diffractometer, fwhm=FWHM, reflections=reflections)
        theirs = peer.value_and_grad(start.lattice, start.frac_coords)
        difference = checked(f"{atoms} atoms",
                             relative_difference((ours.d_lattice, ours.d_frac), theirs[1:]))
        times = best_times({
            "value": lambda: loss_value(start, target, diffractometer, fwhm=FWHM, reflections=
                                        reflections),
            "xrdcore": lambda: loss_and_grad(start, target, diffractometer, fwhm=FWHM, reflections=
                                             reflections),
            "jax": lambda: peer.value_and_grad(start.lattice, start.frac_coords)
        })
        print(f"| {atoms} | {len(reflections.hkl)} | {times['value'] * 1e3:.3f} "
              f"| {times['xrdcore'] * 1e3:.3f} "
              f"| {times['xrdcore'] / times['value']:.2f}× | {times['jax'] * 1e3:.3f} "
              f"| {times['jax'] / times['xrdcore']:.1f}× | {difference:.1e} |")
        rows.append(
            row(machine, "single value+grad", structure.composition.reduced_formula, atoms, 1,
                times["xrdcore"], "jax jit", times["jax"], difference))
        rows.append(
            row(machine, "single value", structure.composition.reduced_formula, atoms, 1,
                times["value"], "", float("nan"), float("nan")))
    return rows


def batch_rows(diffractometer, machine) -> list[dict]:
    rows = []
    print("\n### Batches, value + gradient (structures/s)\n")
    print(
        "| structure | atoms | batch | BatchLoss | JAX vmap | JAX lax.map (chunks of 128) "
        "| BatchLoss / best JAX | max rel. gradient difference |\n|---|---|---|---|---|---|---|---|"
    )
    rutile = datasets.load_prototype("A2B_tP6_136_f_a")
    for name, crystal in (("rutile", rutile), ("rutile 2×2×2", doubled(rutile))):
        target = diffractometer.pattern(crystal, fwhm=FWHM)
        batch = BatchLoss(crystal, target, diffractometer, fwhm=FWHM)
        setup = batch.setup
        peer = JaxCosineLoss(crystal, batch.reflections.hkl, diffractometer.wavelength, setup.grid,
                             batch.target, FWHM)
        for n_batch in BATCH_SIZES:
            lattices, coords = workload(crystal, n_batch)
            ours = batch(lattices, coords)
            calls = {"BatchLoss": lambda: batch(lattices, coords)}
            difference = 0.0
            for mode in ("vmap", "map"):
                try:
                    theirs = peer.batched(lattices, coords, mode, CHUNK)
                except Exception as error:  # XLA reports running out of memory as a runtime error
                    print(f"(JAX {mode} at batch {n_batch} failed: "
                          f"{type(error).__name__}: {str(error)[:120]})")
                    continue
                difference = max(
                    difference,
                    checked(f"{name} batch {n_batch} {mode}",
                            relative_difference(ours[1:], theirs[1:])))
                calls[mode] = lambda mode=mode: peer.batched(lattices, coords, mode, CHUNK)
            seconds = best_times(calls, min_duration=0.2, repeats=3)
            rates = {key: n_batch / value for key, value in seconds.items()}
            best_jax = max(rates.get("vmap", 0.0), rates.get("map", 0.0))
            print(f"| {name} | {len(crystal)} | {n_batch} | {rates['BatchLoss']:,.0f} "
                  f"| {rates.get('vmap', float('nan')):,.0f} "
                  f"| {rates.get('map', float('nan')):,.0f} "
                  f"| {rates['BatchLoss'] / best_jax:.1f}× | {difference:.1e} |")
            for mode, label in (("vmap", "jax vmap"), ("map", "jax lax.map")):
                if mode in seconds:
                    rows.append(
                        row(machine, "batch value+grad", name, len(crystal), n_batch,
                            seconds["BatchLoss"] / n_batch, label, seconds[mode] / n_batch,
                            difference))
    return rows


def row(machine, comparison, structure, atoms, batch, ours, peer, theirs, difference) -> dict:
    return dict(date=time.strftime("%Y-%m-%d"), machine=machine, comparison=comparison,
                structure=structure, atoms=atoms, batch=batch, xrdcore_ms=f"{ours * 1e3:.4g}",
                peer=peer, peer_ms="" if np.isnan(theirs) else f"{theirs * 1e3:.4g}",
                peer_over_xrdcore="" if np.isnan(theirs) else f"{theirs / ours:.3g}",
                max_rel_gradient_difference="" if np.isnan(difference) else f"{difference:.1e}")


def targets(rows) -> None:
    """The issue's targets against these measurements (a statement per target, met or not)."""
    single = {
        int(r["atoms"]): float(r["peer_over_xrdcore"])
        for r in rows if r["comparison"] == "single value+grad"
    }
    print("\nTargets (this run):")
    for atoms, wanted in ((8, 3.0), (64, 5.0)):
        verdict = "met" if single[atoms] >= wanted else "NOT met"
        print(f"- value + gradient ≥ {wanted:.0f}× faster than JAX at {atoms} atoms: "
              f"{single[atoms]:.2f}× ({verdict})")
    batch = {}
    for r in rows:
        if r["comparison"] == "batch value+grad":
            key = (r["structure"], int(r["batch"]))
            batch[key] = min(batch.get(key, np.inf), float(r["peer_over_xrdcore"]))
    worst = min(batch.values())
    print(f"- BatchLoss ≥ 2× the best JAX batch at every size: worst {worst:.2f}× "
          f"({'met' if worst >= 2 else 'NOT met'}; {min(batch, key=batch.get)})")


def main():
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    print(f"Date: {time.strftime('%Y-%m-%d')}; {machine}; jax {jax.__version__} "
          f"({jax.default_backend()}, float64)\n")
    diffractometer = Diffractometer("CuKa", (10, 90), backend="cpu")
    rows = single_rows(diffractometer, machine) + batch_rows(diffractometer, machine)
    targets(rows)
    write_results(rows, RESULTS_CSV, FIELDS, key=("machine", "comparison", "peer"))


if __name__ == "__main__":
    main()
