"""Exercise checks: right answers pass, common slips are named, nonsense is explained."""

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from xrdcore import Crystal
from xrdcore.teaching import checks


def test_bragg_check_accepts_right_and_names_slips():
    d = 3.1356  # Si (111), Å
    right = np.degrees(2 * np.arcsin(1.54184 / (2 * d)))
    assert checks.check_bragg_two_theta(right, d)
    assert "θ instead of 2θ" in checks.check_bragg_two_theta(right / 2, d).message
    assert "radians" in checks.check_bragg_two_theta(np.radians(right), d).message
    wrong = checks.check_bragg_two_theta(right * 1.1, d)
    assert not wrong and "too large" in wrong.message
    assert "number" in checks.check_bragg_two_theta("twenty", d).message
    assert "nan" in checks.check_bragg_two_theta(np.nan, d).message


@pytest.fixture(scope="module")
def silicon():
    return Crystal.from_pymatgen(
        Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.431), ["Si"], [[0, 0, 0]]))


def test_absences_check(silicon):
    candidates = [(2, 0, 0), (2, 2, 2), (3, 1, 1), (4, 0, 0)]
    assert checks.check_absent_reflections([(2, 0, 0), (2, 2, 2)], silicon, candidates)
    partial = checks.check_absent_reflections([(2, 0, 0)], silicon, candidates)
    assert not partial and "(2, 2, 2)" in partial.message and "absent too" in partial.message
    extra = checks.check_absent_reflections([(2, 0, 0), (2, 2, 2), (4, 0, 0)], silicon, candidates)
    assert not extra and "(4, 0, 0)" in extra.message and "scatter" in extra.message
    assert "not among" in checks.check_absent_reflections([(1, 0, 0)], silicon, candidates).message


def test_lorentz_ratio_check():

    def lp(tt):
        theta = np.radians(tt / 2)
        return (1 + np.cos(2 * theta)**2) / (np.sin(theta)**2 * np.cos(theta))

    assert checks.check_lorentz_polarization_ratio(lp(20) / lp(80), 20, 80)
    assert "invert" in checks.check_lorentz_polarization_ratio(lp(80) / lp(20), 20, 80).message


def test_feedback_renders():
    feedback = checks.check_value(1.0, 1.0)
    assert str(feedback).startswith("✔") and "Correct" in feedback._repr_markdown_()


def test_lattice_retrieval_check_names_the_optimiser_slip():
    from xrdcore import Diffractometer, datasets
    from xrdcore.optimize.core import optimize
    from xrdcore.structure.parametrize import lattice_only
    from xrdcore.structure.perturb import perturb

    rutile = datasets.load_prototype("A2B_tP6_136_f_a")
    xrd = Diffractometer("CuKa", (10, 90))
    target = xrd.pattern(rutile, fwhm=0.1)
    start = perturb(rutile, strain=0.02, seed=3)
    adam = optimize(lattice_only(start), start, target, xrd, steps=50, metric="cosine",
                    fwhm=0.1).loss
    assert checks.check_lattice_retrieval(adam, rutile, 0.02, 3, "adam", steps=50)
    wrong = checks.check_lattice_retrieval(adam, rutile, 0.02, 3, "lbfgs", steps=50)
    assert not wrong and "run 'adam' instead of 'lbfgs'" in wrong.message


def test_coincidence_scale_check():
    """Rock salt scaled by s = √(8/11): its (220), d = s·a/√8, lands on the unscaled (311),
    d = a/√11."""
    rock_salt = Crystal(np.eye(3) * 5.64, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Cl"])
    right = np.sqrt(8 / 11)
    assert checks.check_coincidence_scale(right, rock_salt, (2, 2, 0), (3, 1, 1))
    assert "invert" in str(
        checks.check_coincidence_scale(1 / right, rock_salt, (2, 2, 0), (3, 1, 1)))
    assert "s − 1" in str(checks.check_coincidence_scale(right - 1, rock_salt, (2, 2, 0),
                                                         (3, 1, 1)))
    assert not checks.check_coincidence_scale(0.9, rock_salt, (2, 2, 0), (3, 1, 1))


def test_energy_minimum_check_refines_and_names_slips():
    pytest.importorskip("chgnet")
    from xrdcore import datasets
    from xrdcore.landscape.directions import lattice_direction
    from xrdcore.landscape.scans import energy_scan, local_minima

    rutile = datasets.load_prototype("A2B_tP6_136_f_a")
    strains = np.linspace(-0.1, 0.1, 21)
    values = energy_scan(rutile, lattice_direction(rutile, 0), strains, slopes=False).loss
    (i, ) = local_minima(values)
    y0, y1, y2 = values[i - 1:i + 2]
    right = 100 * (strains[i] + 0.01 * (y0 - y2) / (2 *
                                                    (y0 - 2 * y1 + y2)))  # vertex of the parabola
    assert checks.check_energy_minimum(right, rutile)
    assert "fraction" in checks.check_energy_minimum(right / 100, rutile).message
    assert "wrong sign" in checks.check_energy_minimum(-right, rutile).message
    assert "experimental cell" in checks.check_energy_minimum(0.0, rutile).message
    assert "lowest sample" in checks.check_energy_minimum(100 * strains[i], rutile).message
    assert not checks.check_energy_minimum(right + 1.5, rutile)


def test_bulk_modulus_check_names_unit_and_factor_slips():
    pytest.importorskip("chgnet")
    from ase.units import GPa

    from xrdcore import datasets, energy
    from xrdcore.landscape.directions import Direction
    from xrdcore.landscape.scans import curvature, energy_scan

    rock_salt = datasets.load_prototype("AB_cF8_225_a_b")
    relaxed = energy.relax(rock_salt).crystal
    strains = np.array([-0.01, 0.0, 0.01])
    isotropic = Direction(relaxed.lattice, np.zeros_like(relaxed.frac_coords), "isotropic")
    second = curvature(strains, energy_scan(relaxed, isotropic, strains, slopes=False).loss)
    right = (len(relaxed) * second / (9 * relaxed.volume) / GPa
             )  # three-point route, not the check's fit
    assert 15 < right < 40  # GPa: rock salt's is about 25
    assert checks.check_bulk_modulus(right, rock_salt)
    assert "eV/Å³" in checks.check_bulk_modulus(right * GPa, rock_salt).message
    assert "1/9" in checks.check_bulk_modulus(9 * right, rock_salt).message
    assert ("experimental cell" in checks.check_bulk_modulus(
        checks.bulk_modulus(rock_salt, relax=False), rock_salt).message)
    assert not checks.check_bulk_modulus(1.2 * right, rock_salt)


def test_recovery_rate_check_names_the_slips(tmp_path):
    import csv

    path = tmp_path / "runs.csv"
    rows = [
        dict(kind="lattice", parametrization="p1", magnitude=m, recovered=str(r), matched=str(t))
        for m, r, t in [("0.02", True, True), ("0.02", False,
                                               True), ("0.02", False,
                                                       True), ("0.02", False,
                                                               False), ("0.05", True,
                                                                        True), ("0.05", True, True)]
    ]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    where = dict(kind="lattice", parametrization="p1", magnitude="0.02")
    assert checks.check_recovery_rate(0.25, path, **where)
    assert "matched" in str(checks.check_recovery_rate(0.75, path, **where))
    assert "percentage" in str(checks.check_recovery_rate(25, path, **where))
    assert "pool" in str(checks.check_recovery_rate(0.5, path, **where))
    with pytest.raises(ValueError, match="no run in .* has"):
        checks.check_recovery_rate(0.5, path, kind="coordinates")


def test_width_schedule_check_names_the_slips():
    right = np.geomspace(3.0, 0.1, 4)
    assert checks.check_width_schedule(right, 3.0, 0.1, 4)
    assert "linearly" in checks.check_width_schedule(np.linspace(3.0, 0.1, 4), 3.0, 0.1, 4).message
    assert "narrowest first" in checks.check_width_schedule(right[::-1], 3.0, 0.1, 4).message
    assert ("endpoint=False" in checks.check_width_schedule(
        np.geomspace(3.0, 0.1, 4, endpoint=False), 3.0, 0.1, 4).message)
    assert ("not extra ones" in checks.check_width_schedule(np.geomspace(3.0, 0.1, 5), 3.0, 0.1,
                                                            4).message)
    assert "stage 2" in checks.check_width_schedule([3.0, 1.5, right[2], 0.1], 3.0, 0.1, 4).message
    assert "list of 4 widths" in checks.check_width_schedule("wide", 3.0, 0.1, 4).message


def test_broadening_kernel_check():
    assert checks.check_broadening_kernel(np.sqrt(0.5**2 - 0.1**2), 0.1, 0.5)
    assert "squares" in checks.check_broadening_kernel(0.4, 0.1, 0.5).message
    assert "add the squares" in checks.check_broadening_kernel(np.hypot(0.5, 0.1), 0.1, 0.5).message
    assert "already have a width" in checks.check_broadening_kernel(0.5, 0.1, 0.5).message


def test_remedy_rate_check(tmp_path):
    import csv

    path = tmp_path / "remedies.csv"
    rows = []
    for remedy, parametrization, magnitude, recovered in [
        ("basin", "p1", 0.02, [True, False, False, False]),
        ("basin", "family", 0.02, [True, True, True, True]),
        ("basin", "p1", 0.05, [False, False, False, False]),
        ("none", "p1", 0.02, [False, False, False, True])
    ]:
        for index, outcome in enumerate(recovered):
            rows.append(
                dict(remedy=remedy, kind="lattice", parametrization=parametrization,
                     magnitude=magnitude, recovered=outcome,
                     matched=True if index < 3 else outcome))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert checks.check_remedy_rate(0.25, path, "basin", "lattice", "p1", 0.02)
    assert ("'matched'" in checks.check_remedy_rate(0.75, path, "basin", "lattice", "p1",
                                                    0.02).message)
    assert ("pool both parametrisations" in checks.check_remedy_rate(5 / 8, path, "basin",
                                                                     "lattice", "p1", 0.02).message)
    assert ("pool every magnitude" in checks.check_remedy_rate(1 / 8, path, "basin", "lattice",
                                                               "p1", 0.02).message)
    assert checks.check_remedy_rate(0, path, "basin", "lattice", "p1", 0.05)
    assert not checks.check_remedy_rate(0.1, path, "basin", "lattice", "p1", 0.05)
    assert ("no runs" in checks.check_remedy_rate(0.5, path, "energy:10", "lattice", "p1",
                                                  0.02).message)


def test_check_value_against_zero():
    assert checks.check_value(0.0, 0.0)
    wrong = checks.check_value(0.1, 0.0)
    assert not wrong and "should be 0" in wrong.message  # no division by the expected value


def test_unanswered_placeholders_say_so(silicon):
    candidates = [(2, 0, 0), (2, 2, 2)]
    for feedback in (checks.check_value(..., 1.0), checks.check_bragg_two_theta(
            ..., 3.1356), checks.check_absent_reflections(
                ..., silicon, candidates), checks.check_array(..., np.zeros(3), atol=1e-9),
                     checks.check_width_schedule(..., 3.0, 0.1, 4), checks.check_choice(
                         ..., "ABC"), checks.check_line_plot(
                             ..., {}), checks.check_scan_basin(..., [0, 1, 2], [1, 0, 1])):
        assert not feedback and "no answer yet" in feedback.message
    assert "list of (h, k, l)" in checks.check_absent_reflections(5, silicon, candidates).message


def test_choice_check():
    assert (checks.check_choice("b", "ABC") and
            "graded after" in checks.check_choice("b", "ABC").message)
    assert "A, B, C" in checks.check_choice("E", "ABC").message
    assert "as a string" in checks.check_choice(2, "ABC").message
    right = checks.check_choice(" c ", {"A": "one", "B": "two", "C": "the right one"}, correct="C")
    assert right and "the right one" in right.message
    wrong = checks.check_choice("A", "ABC", correct="C", reasons={"A": "look at the intervals"})
    assert not wrong and "look at the intervals" in wrong.message
    assert ("compare it with the values you computed" in checks.check_choice(
        "B", "ABC", correct="C").message)


def test_line_plot_check_names_the_slips():
    from matplotlib.figure import Figure

    x = np.linspace(-0.1, 0.1, 21)
    y = x**2
    expected = {"the scan": (100 * x, y)}

    def figure(*lines, labels=True):
        fig = Figure()
        ax = fig.subplots()
        for line_x, line_y in lines:
            ax.plot(line_x, line_y)
        if labels:
            ax.set_xlabel("strain (%)")
            ax.set_ylabel("loss")
        return fig

    assert checks.check_line_plot(figure((100 * x, y)), expected)
    assert checks.check_line_plot(
        figure((np.arange(3), np.arange(3)), (100 * x, y)).axes[0], expected)
    scatter = Figure()
    ax = scatter.subplots()
    ax.scatter(100 * x, y)
    assert checks.check_line_plot(scatter, expected, labels=False)
    assert ("fractions where per cent is wanted" in checks.check_line_plot(
        figure((x, y)), expected).message)
    assert "swapped" in checks.check_line_plot(figure((y, 100 * x)), expected).message
    assert "other y values" in checks.check_line_plot(figure((100 * x, 2 * y)), expected).message
    assert ("label both axes" in checks.check_line_plot(figure((100 * x, y), labels=False),
                                                        expected).message)
    assert "draws no lines" in checks.check_line_plot(Figure(), expected).message
    assert ("no line draws the scan" in checks.check_line_plot(figure((np.arange(3), np.arange(3))),
                                                               expected).message)
    assert "matplotlib Figure" in checks.check_line_plot([1, 2], expected).message


def test_peak_ratio_check_names_multiplicity_and_lp(silicon):
    from xrdcore import Diffractometer
    from xrdcore.physics.scattering import (bragg_two_theta, form_factor, form_factor_coefficients,
                                            lorentz_polarization)

    def by_hand(hkl, multiplicity):  # |F|² LP m with the real form factor (the assignment's route)
        d = 5.431 / np.linalg.norm(hkl)
        f = form_factor(14, form_factor_coefficients("Si"), 1 / (2 * d))
        structure_factor = f * np.sum(np.exp(2j * np.pi * silicon.frac_coords @ np.array(hkl)))
        return multiplicity * abs(structure_factor)**2 * lorentz_polarization(bragg_two_theta(d))

    xrd = Diffractometer("CuKa", (10, 90))
    right = by_hand((2, 2, 0), 12) / by_hand((1, 1, 1), 8)
    assert checks.check_peak_ratio(right, silicon, (2, 2, 0), (1, 1, 1), xrd)
    assert checks.check_peak_ratio(right, silicon, (0, -2, 2), (1, -1, 1),
                                   xrd)  # any member of the peak
    assert ("multiplicity" in checks.check_peak_ratio(right * 8 / 12, silicon, (2, 2, 0), (1, 1, 1),
                                                      xrd).message)
    lp_220, lp_111 = lorentz_polarization(bragg_two_theta(5.431 / np.sqrt([8, 3])))
    assert ("Lorentz" in checks.check_peak_ratio(right * lp_111 / lp_220, silicon, (2, 2, 0),
                                                 (1, 1, 1), xrd).message)
    assert ("invert" in checks.check_peak_ratio(1 / right, silicon, (2, 2, 0), (1, 1, 1),
                                                xrd).message)
    with pytest.raises(ValueError, match="no peak"):
        checks.check_peak_ratio(right, silicon, (2, 0, 0), (1, 1, 1), xrd)  # absent: on no peak


def test_expansion_slope_check():
    from xrdcore import Diffractometer
    from xrdcore.gradients import loss_and_grad, loss_value

    truth = Crystal(np.eye(3) * 5.64, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Cl"])
    xrd = Diffractometer("CuKa", (10, 90))
    target = xrd.pattern(truth, fwhm=0.1)
    stretched = truth.replace(lattice=truth.lattice * 1.005)
    step = 1e-6

    def loss_at(epsilon):
        return loss_value(stretched.replace(lattice=stretched.lattice * (1 + epsilon)), target, xrd,
                          fwhm=0.1)

    right = (loss_at(step) - loss_at(-step)) / (2 * step)  # finite differences, not the adjoint
    assert checks.check_expansion_slope(right, stretched, target, xrd)
    assert "flip the sign" in checks.check_expansion_slope(-right, stretched, target, xrd).message
    assert "per cent" in checks.check_expansion_slope(right / 100, stretched, target, xrd).message
    unweighted = loss_and_grad(stretched, target, xrd, fwhm=0.1).d_lattice.sum()
    assert "weighting" in checks.check_expansion_slope(unweighted, stretched, target, xrd).message


def test_accidental_fraction_check():
    from xrdcore import Diffractometer
    from xrdcore.landscape.overlap import cosine_split

    xrd = Diffractometer("CuKa", (10, 90))
    truth = Crystal(np.eye(3) * 4.0, [[0, 0, 0]], ["Po"])
    wrong = truth.replace(lattice=np.eye(3) * 4.0 * np.sqrt(2))  # every shared peak an accident
    partners, accidents = cosine_split(wrong, truth, xrd, fwhm=0.1)
    right = accidents / (partners + accidents)
    assert right > 0.99 and checks.check_accidental_fraction(right, wrong, truth, xrd)
    assert "partner share" in checks.check_accidental_fraction(1 - right, wrong, truth, xrd).message
    assert "percentage" in checks.check_accidental_fraction(100 * right, wrong, truth, xrd).message


def test_scan_basin_and_descent_end():
    from xrdcore.landscape.scans import basin

    offsets = np.arange(-5, 6) / 100
    values = np.array([5, 3, 4, 2, 1, 0, 1, 3, 2, 4, 6], dtype=float)
    assert basin(offsets, values) == pytest.approx((-0.03, 0.02))
    assert checks.scan_descent_end(offsets, values,
                                   0.04) == pytest.approx(0.03)  # stops at a wrong minimum
    assert checks.scan_descent_end(offsets, values, 0.01) == pytest.approx(0.0)
    assert checks.scan_descent_end(offsets, values, -0.05) == pytest.approx(-0.04)
    assert checks.check_scan_basin((-3, 2), offsets, values)
    assert checks.check_scan_basin((-0.03, 0.02), offsets, values, percent=False)
    assert "swapped" in checks.check_scan_basin((2, -3), offsets, values).message
    assert "fractions" in checks.check_scan_basin((-0.03, 0.02), offsets, values).message
    assert "left end" in checks.check_scan_basin((-4, 2), offsets, values).message
    assert "outwards" in checks.check_scan_basin((-4, 2), offsets, values).message
    assert "inwards" in checks.check_scan_basin((-3, 1), offsets, values).message
    assert "two ends" in checks.check_scan_basin((1, 2, 3), offsets, values).message


def test_rate_comparison(tmp_path):
    import csv

    path = tmp_path / "runs.csv"
    outcomes = {
        "a": (40, 50),
        "b": (5, 50),
        "c": (10, 50),
        "d": (12, 50),
        "e": (0, 50),
        "f": (0, 50)
    }
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["parametrization", "magnitude", "recovered"])
        writer.writeheader()
        for name, (hits, runs) in outcomes.items():
            writer.writerows(
                dict(parametrization=name, magnitude="0.02", recovered=str(i < hits))
                for i in range(runs))

    def compare(first, second):
        return checks.rate_comparison(path, dict(parametrization=first, magnitude=0.02),
                                      dict(parametrization=second, magnitude=0.02))

    assert compare("a", "b") == "higher" and compare("b", "a") == "lower"
    assert compare("c", "d") == "indistinguishable" and compare("e", "f") == "both zero"
    with pytest.raises(ValueError, match="no runs"):
        compare("a", "z")


def test_preferred_candidate_and_coincidence_scale():
    grid = np.linspace(20, 40, 1001)
    target = np.exp(-0.5 * ((grid - 30) / 0.1)**2)
    candidates = {"shifted": np.exp(-0.5 * ((grid - 30.5) / 0.1)**2), "scaled": 3 * target}
    assert (checks.preferred_candidate("cosine", candidates,
                                       target) == "scaled")  # cosine ignores scale
    rock_salt = Crystal(np.eye(3) * 5.64, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Cl"])
    assert checks.coincidence_scale(rock_salt, (2, 2, 0), (3, 1, 1)) == pytest.approx(
        np.sqrt(8 / 11))
