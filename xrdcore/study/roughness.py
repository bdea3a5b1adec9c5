"""How rough the landscape is on realistic targets: local minima along fixed scans through the
truth, ideal against realistic targets (:mod:`xrdcore.study.realism`), for two models.

Scans (per structure, the same for every target): a stretch of each lattice vector by ±10 %
(chapter 5's scan) and :data:`RANDOM_SCANS` random displacements of every atom by up to
±0.5 Å (:func:`~xrdcore.landscape.directions.random_direction`, seeded), 201 points each.
Models: ``"ideal"``, the ideal pattern of the rest of the book against the target (batched,
:func:`~xrdcore.landscape.scans.scan`), and ``"matched"``, the measurement model with the very
instrument that made the target (:func:`~xrdcore.study.realism.target_instrument`; the noise
is the only thing it cannot model). Each row counts the interior local minima
(:func:`~xrdcore.landscape.scans.local_minima`, tolerance 1e-12) and says where the lowest
point lies (``lowest_offset``: 0 when the truth is the best point of the scan).

``xrdcore roughness --config realism --output xrdcore/data/realism_minima.csv`` writes the
table (with ``<output>.config.json`` and an environment record ``<output>.env.json``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from xrdcore.diffraction import Diffractometer
from xrdcore.landscape.directions import Direction, displaced, lattice_direction, random_direction
from xrdcore.landscape.scans import local_minima, scan
from xrdcore.measurement import measured_loss
from xrdcore.structure import datasets
from xrdcore.study.config import StudyConfig, write_atomically
from xrdcore.study.realism import realistic_target, target_instrument
from xrdcore.study.runner import environment_record, worker_pool
from xrdcore.validation import whole

#: Random atom-displacement scans per structure, besides the three lattice stretches.
RANDOM_SCANS = 3
#: Offsets of the scans: relative strain, and Å per atom.
STRAINS = np.linspace(-0.1, 0.1, 201)
DISPLACEMENTS = np.linspace(-0.5, 0.5, 201)
MINIMUM_TOLERANCE = 1e-12
MODELS = ("ideal", "matched")


def scans(structure: str, seed: int = 0) -> list[tuple[Direction, np.ndarray]]:
    """The scans of one structure: (direction, offsets) for each lattice stretch and random
    displacement."""
    truth = datasets.get_prototype(structure).crystal()
    rng = np.random.default_rng(seed)
    return ([(lattice_direction(truth, axis), STRAINS) for axis in range(3)] +
            [(random_direction(truth, rng), DISPLACEMENTS) for _ in range(RANDOM_SCANS)])


def roughness_rows(structure: str, config: StudyConfig, seed: int = 0) -> Iterator[dict]:
    """One row per (target, model, scan) of ``structure`` for the targets of ``config`` (its
    instrument and peak width; noise drawn with ``seed``)."""
    truth = datasets.get_prototype(structure).crystal()
    xrd = Diffractometer(config.wavelength, config.two_theta_range, config.grid_step,
                         backend="cpu")
    peak_max = float(xrd.pattern(truth, fwhm=config.fwhm, normalize=False).max())
    for target_name in config.targets:
        target = realistic_target(truth, xrd, target_name, config.fwhm, seed)
        instrument = target_instrument(target_name, config.fwhm, peak_max)
        for index, (direction, offsets) in enumerate(scans(structure, seed)):
            ideal = scan(truth, direction, offsets, target, xrd, fwhm=config.fwhm).loss
            matched = np.array([
                measured_loss(displaced(truth, [direction], [t]), target, xrd, instrument)
                for t in offsets
            ])
            for model, losses in zip(MODELS, (ideal, matched)):
                yield dict(structure=structure, target=target_name, model=model,
                           scan=f"{index}:{direction.name}",
                           minima=len(local_minima(losses, MINIMUM_TOLERANCE)),
                           lowest_offset=float(offsets[int(np.argmin(losses))]),
                           loss_at_truth=float(losses[len(offsets) // 2]))


def _structure_rows(structure: str, config: StudyConfig) -> list[dict]:
    return list(roughness_rows(structure, config))


def write_roughness(config: StudyConfig, output: Path | str, workers: int = 1,
                    progress: bool = True) -> Path:
    """The roughness table of every structure and target of ``config`` as CSV at ``output``
    (structures on ``workers`` local processes), with its config and environment record beside
    it."""
    import pandas as pd
    from tqdm.auto import tqdm

    output = Path(output)
    structures = config.structure_names()
    runs = len(structures) * len(config.targets) * len(MODELS) * (3 + RANDOM_SCANS)
    record = environment_record(config, runs)  # the code as it is when the computation starts
    workers = min(whole(workers, "workers", low=1), len(structures))
    configs = [config] * len(structures)
    if workers == 1:
        tables = list(
            tqdm(map(_structure_rows, structures, configs), total=len(structures),
                 disable=not progress, desc="structures"))
    else:
        with worker_pool(workers) as pool:
            tables = list(
                tqdm(pool.map(_structure_rows, structures, configs), total=len(structures),
                     disable=not progress, desc="structures"))
    rows = [row for table in tables for row in table]
    pd.DataFrame(rows).to_csv(output, index=False)
    config.to_json(output.with_suffix(".config.json"))
    write_atomically(output.with_suffix(".env.json"), json.dumps([record], indent=2))
    return output
