"""Array-based crystal structure: the only structure type the kernels see.

A :class:`Crystal` holds plain float64/int64 arrays, ready to be handed to numba:

* ``lattice`` (3, 3) Å, lattice vectors as rows (pymatgen's convention),
* ``frac_coords`` (N, 3) fractional coordinates,
* ``atomic_numbers`` (N,) Z of each scatterer,
* ``occupancies`` (N,) site occupancy in (0, 1],
* ``b_iso`` (N,) isotropic Debye–Waller factor B in Å² (intensity factor exp(−2 B s²)
  with s = sin θ / λ, i.e. scattering-factor factor exp(−B s²)).

A partially occupied (disordered) pymatgen site becomes one entry per species at the
same position, exactly as pymatgen flattens sites before computing a pattern. There is
no physics here; the module only converts and validates.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import math
import numbers
import os
import re
import warnings
from collections.abc import ItemsView, Iterable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.validation import (LIMITS, StructureError, describe, did_you_mean, guard, instance,
                                real_array)

if TYPE_CHECKING:
    from pymatgen.core import IStructure, Structure

#: Volumes below this (Å³) are treated as a singular lattice.
MIN_CELL_VOLUME = 1e-3
#: Shortest accepted lattice vector (Å): shorter than any bond (0.74 Å in H₂), so no cell.
MIN_CELL_LENGTH = 0.1
#: Longest accepted lattice vector (Å): 0.1 mm, while the largest known unit cells (virus
#: crystals) are ~2000 Å.
MAX_CELL_LENGTH = 1e6
#: Largest accepted |fractional coordinate|: beyond it float64 keeps < 10 digits of the position
#: within its cell.
MAX_FRACTIONAL = 1e6
#: Largest accepted Debye–Waller B (Å²): B = 8π²⟨u²⟩, so 100 Å² is an rms displacement of 1.1 Å.
MAX_B_ISO = 100.0
#: Total occupancy of one position may exceed 1 by at most this (CIF rounding).
OCCUPANCY_TOL = 1e-6
#: Positions closer than this in fractional units count as one (disordered) site.
SAME_SITE_TOL = 1e-8
#: Largest atomic number with a known element symbol.
MAX_ATOMIC_NUMBER = 118
#: Longest accepted line of a CIF file (characters); the CIF 1.1 and 2.0 standards allow 2048.
MAX_CIF_LINE = 100_000


class CifWarning(UserWarning):
    """Something in a CIF was changed or dropped on reading (pymatgen's warnings, in our words)."""


@lru_cache(maxsize=1)
def _element_numbers() -> dict[str, int]:
    from pymatgen.core.periodic_table import Element

    return {element.symbol: int(element.Z) for element in Element}


def element_symbol(atomic_number: int) -> str:
    """Element symbol for atomic number Z (1 … 118)."""
    from pymatgen.core.periodic_table import Element

    return Element.from_Z(int(atomic_number)).symbol


def atomic_number(species: str | int) -> int:
    """Atomic number of an element symbol ("Fe") or a Z given as an integer.

    TypeError for anything else (True, None, a float); ValueError for an unknown symbol (with
    the symbol probably meant: "fe" → 'Fe') or a charged one ("Fe2+": give the neutral "Fe",
    the form factors are those of neutral atoms, as in pymatgen's XRDCalculator).
    """
    if isinstance(species, (bool, np.bool_)) or not isinstance(species, (str, numbers.Integral)):
        raise TypeError(
            f"{describe(species)} is not an element; give a symbol such as 'Fe' or an integer "
            "atomic number")
    if isinstance(species, numbers.Integral):
        z = int(species)
        if not 1 <= z <= MAX_ATOMIC_NUMBER:
            raise ValueError(
                f"atomic number {z} is not an element (expected 1 … {MAX_ATOMIC_NUMBER})")
        return z
    symbol = species.strip()
    table = _element_numbers()
    if symbol in table:
        return table[symbol]
    from pymatgen.core.periodic_table import Element

    try:
        return int(Element(symbol).Z)  # aliases such as "D" (deuterium)
    except ValueError:
        pass
    charged = re.fullmatch(r"([A-Z][a-z]?)\d*[+-]", symbol)
    if charged and charged.group(1) in table:
        raise ValueError(
            f"species {species!r} carries a charge; give the element {charged.group(1)!r} "
            "(the X-ray form factors used are those of neutral atoms, as in pymatgen)")
    raise ValueError(f"unknown element {species!r}{did_you_mean(symbol, table)} "
                     "(give a symbol such as 'Fe' or 'O', or an atomic number)")


def _check_cell_length(length: float, what: str) -> None:
    """StructureError unless MIN_CELL_LENGTH ≤ ``length`` (Å) ≤ MAX_CELL_LENGTH; ``what`` names
    it."""
    if not MIN_CELL_LENGTH <= length <= MAX_CELL_LENGTH:
        bound = (f"below MIN_CELL_LENGTH = {MIN_CELL_LENGTH:g} Å (shorter than any bond)"
                 if length < MIN_CELL_LENGTH else f"beyond MAX_CELL_LENGTH = {MAX_CELL_LENGTH:g} Å "
                 "(the largest known unit cells are ~2000 Å)")
        raise StructureError(f"{what} is {length:.4g} Å long, {bound}; wrong units?")


def _check_fractional(farthest: float, what: str) -> None:
    """StructureError if ``farthest`` (the largest |fractional coordinate|) is beyond
    MAX_FRACTIONAL."""
    if farthest > MAX_FRACTIONAL:
        raise StructureError(
            f"{what} {farthest:.3g}, beyond MAX_FRACTIONAL = {MAX_FRACTIONAL:g}: "
            "so far out float64 "
            "keeps too few digits of the position in its cell (wrap the coordinates into [0, 1))")


def _array(value: ArrayLike, name: str) -> np.ndarray:
    """:func:`real_array` as a fresh copy, its value problems raised as StructureError."""
    try:
        return real_array(value, name).copy()
    except ValueError as error:  # a TypeError passes as it is
        raise StructureError(str(error)) from None


def _atomic_numbers(species: Iterable[str | int] | int, n_atoms: int) -> np.ndarray:
    """(N,) int64 atomic numbers of one species entry per position."""
    # int is an Integral already; named for mypy, which does not know that
    if isinstance(species, (str, int, numbers.Integral)):
        species = [species]
    elif (species is None or isinstance(species, (dict, set, bytes)) or
          not hasattr(species, "__iter__")):
        raise TypeError("species must be a sequence of element symbols or atomic numbers, "
                        f"got {describe(species)}")
    if (isinstance(species, np.ndarray) and
            species.dtype.kind in "iu"):  # replace(): a Crystal's own numbers
        result = species.astype(np.int64).reshape(-1)
        outside = (result < 1) | (result > MAX_ATOMIC_NUMBER)
        if np.any(outside):
            atomic_number(int(result[outside][0]))  # raises, naming the first
    else:
        result = np.array([atomic_number(s) for s in species], dtype=np.int64)
    if len(result) != n_atoms:
        raise StructureError(f"got {len(result)} species for {n_atoms} positions")
    return result


def _checked_lattice(lattice: ArrayLike) -> np.ndarray:
    """The lattice as a fresh (3, 3) array of a right-handed cell with vectors of sane lengths."""
    lattice = _array(lattice, "lattice")
    if lattice.shape != (3, 3):
        raise StructureError(
            f"lattice must be a 3x3 matrix of row vectors in Å, got shape {lattice.shape}")
    scale = float(np.abs(lattice).max()) or 1.0
    lengths = np.linalg.norm(lattice / scale, axis=1) * scale  # scaled: cannot overflow
    if lengths.max() > MAX_CELL_LENGTH:
        _check_cell_length(lengths.max(), f"lattice vector {'abc'[np.argmax(lengths)]}")
    volume = float(np.linalg.det(lattice))  # finite: every entry is ≤ MAX_CELL_LENGTH
    if abs(volume) < MIN_CELL_VOLUME:
        raise StructureError(f"lattice is singular (cell volume {volume:.3g} Å³)")
    if volume < 0:
        raise StructureError(
            f"lattice is left-handed (cell volume {volume:.3g} Å³ < 0); "
            "swap two lattice vectors and the matching fractional-coordinate columns")
    _check_cell_length(lengths.min(), f"lattice vector {'abc'[np.argmin(lengths)]}")
    return lattice


class Crystal:
    """A periodic crystal as arrays (see the module docstring for shapes and units).

    The arrays are read-only; :meth:`replace` makes a changed copy. Wrong types (True, None,
    complex or string arrays) raise TypeError; values that describe no crystal raise
    :class:`~xrdcore.validation.StructureError` (a ValueError); too many atoms raise
    :class:`~xrdcore.validation.ResourceLimitError`.

    Parameters
    ----------
    lattice : (3, 3) array_like, Å, lattice vectors as rows, right-handed, each of length
        MIN_CELL_LENGTH … MAX_CELL_LENGTH, cell volume ≥ MIN_CELL_VOLUME.
    frac_coords : (N, 3) array_like, fractional coordinates, |x| ≤ MAX_FRACTIONAL;
        N ≤ ``LIMITS.max_atoms``.
    species : length-N sequence of element symbols ("Fe", not "fe" or "Fe2+") or atomic numbers.
    occupancies : (N,) array_like in (0, 1], default all 1 (an empty site is left out, not given 0).
    b_iso : (N,) array_like, Å², isotropic Debye–Waller B in [0, MAX_B_ISO], default all 0.
    """

    __slots__ = ("lattice", "frac_coords", "atomic_numbers", "occupancies", "b_iso", "derived")

    def __init__(self, lattice: ArrayLike, frac_coords: ArrayLike, species: Iterable[str | int],
                 occupancies: ArrayLike | None = None, b_iso: ArrayLike | None = None) -> None:
        lattice = _checked_lattice(lattice)
        frac_coords = _array(frac_coords, "frac_coords")
        if frac_coords.size == 0:
            raise StructureError("structure is empty: a crystal needs at least one atom")
        if frac_coords.ndim != 2 or frac_coords.shape[1] != 3:
            raise StructureError(f"frac_coords must have shape (N, 3), got {frac_coords.shape}")
        n_atoms = len(frac_coords)
        guard(n_atoms, "max_atoms", f"a structure of {n_atoms:,} atoms")
        _check_fractional(float(np.abs(frac_coords).max()), "frac_coords reach")
        atomic_numbers = _atomic_numbers(species, n_atoms)
        occupancies = self._per_atom(occupancies, 1.0, n_atoms, "occupancies")
        bad = np.flatnonzero((occupancies <= 0) | (occupancies > 1 + OCCUPANCY_TOL))
        if bad.size:
            value = occupancies[bad[0]]
            hint = "; an empty site should be removed, not given occupancy 0" if value == 0 else ""
            raise StructureError(
                f"occupancies must lie in (0, 1], got {value:g} for entry {bad[0]}{hint}")
        b_iso = self._per_atom(b_iso, 0.0, n_atoms, "b_iso")
        bad = np.flatnonzero((b_iso < 0) | (b_iso > MAX_B_ISO))
        if bad.size:
            raise StructureError(
                f"b_iso (Debye–Waller B, Å²) must be ≥ 0 and ≤ MAX_B_ISO = {MAX_B_ISO:g}, "
                f"got {b_iso[bad[0]]:g} for entry {bad[0]}")
        self.lattice = lattice
        self.frac_coords = frac_coords
        self.atomic_numbers = atomic_numbers
        self.occupancies = occupancies
        self.b_iso = b_iso
        for array in (lattice, frac_coords, atomic_numbers, occupancies, b_iso):
            array.flags.writeable = False  # a Crystal is a value: change it with replace()
        #: memo of data derived from the (read-only) arrays, filled by other modules on demand
        self.derived: dict = {}
        self._check_site_occupancy()

    @staticmethod
    def _per_atom(values: ArrayLike | None, default: float, n_atoms: int, name: str) -> np.ndarray:
        if values is None:
            return np.full(n_atoms, default)
        values = _array(values, name).reshape(-1)
        if values.shape != (n_atoms, ):
            raise StructureError(
                f"{name} must have one value per atom ({n_atoms}), got {values.shape[0]}")
        return values

    def _site_groups(self) -> np.ndarray:
        """Index of the crystallographic site each entry belongs to (entries at one position share
        it)."""
        wrapped = np.round(self.frac_coords % 1.0, 8) % 1.0
        _, site_of_entry = np.unique(wrapped, axis=0, return_inverse=True)
        return site_of_entry.reshape(-1)

    def _check_site_occupancy(self) -> None:
        if np.all(self.occupancies == 1.0) and len(self) == len(np.unique(self._site_groups())):
            return
        totals = np.bincount(self._site_groups(), weights=self.occupancies)
        if np.any(totals > 1 + OCCUPANCY_TOL):
            raise StructureError(
                f"total occupancy of a site is {totals.max():.4g} > 1; "
                "atoms at the same position must share it (partial occupancies summing to ≤ 1)")

    # ----------------------------------------------------------------- properties
    def __len__(self) -> int:
        return len(self.frac_coords)

    @property
    def volume(self) -> float:
        """Cell volume in Å³."""
        return float(np.linalg.det(self.lattice))

    @property
    def species(self) -> list[str]:
        """Element symbol of every entry."""
        return [element_symbol(z) for z in self.atomic_numbers]

    @property
    def cart_coords(self) -> np.ndarray:
        """(N, 3) Cartesian coordinates in Å."""
        return self.frac_coords @ self.lattice

    def replace(self, **changes: Any) -> Crystal:
        """A new Crystal with some arrays replaced (e.g. ``lattice=...``), validated again."""
        fields: dict[str, Any] = dict(lattice=self.lattice, frac_coords=self.frac_coords,
                                      species=self.atomic_numbers, occupancies=self.occupancies,
                                      b_iso=self.b_iso)
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(
                f"unknown Crystal field(s) {sorted(unknown)}; choose from {sorted(fields)}")
        fields.update(changes)
        return Crystal(**fields)

    def __repr__(self) -> str:
        formula = "".join(f"{el}{n if n > 1 else ''}" for el, n in _counts(self.species))
        abc = np.linalg.norm(self.lattice, axis=1)
        return (f"Crystal({formula}, {len(self)} atoms, "
                f"a,b,c = {abc[0]:.4f}, {abc[1]:.4f}, {abc[2]:.4f} Å)")

    # ----------------------------------------------------------------- conversion
    @classmethod
    def from_pymatgen(cls, structure: IStructure) -> Crystal:
        """From a pymatgen ``Structure``; a disordered site gives one entry per species.

        A site property ``b_iso`` (Å²), if present, is read as the Debye–Waller factor; a
        charged species (Fe2+) is read as its element, as pymatgen's XRDCalculator does.
        Anything but a pymatgen Structure raises TypeError naming what to call instead.
        A left-handed pymatgen lattice (negative volume) is made right-handed by swapping
        the first two lattice vectors and the matching fractional coordinates: the same
        atoms at the same Cartesian positions, with h and k exchanged in Miller indices.
        """
        from pymatgen.core import IStructure
        from pymatgen.core.periodic_table import DummySpecies

        if not isinstance(structure, IStructure):
            raise TypeError(f"Crystal.from_pymatgen needs a pymatgen Structure, "
                            f"got {describe(structure)}{_structure_hint(structure)}")
        if len(structure) == 0:
            raise StructureError("structure is empty: a crystal needs at least one atom")
        b_site = structure.site_properties.get("b_iso", [0.0] * len(structure))
        frac: list[np.ndarray] = []
        species: list[str] = []
        occupancies: list[float] = []
        b_iso: list[float] = []
        for index, (site, b) in enumerate(zip(structure, b_site)):
            for sp, occu in site.species.items():
                if isinstance(sp, DummySpecies):
                    raise StructureError(
                        f"site {index} ({site.label}): {sp.symbol!r} is not a chemical element "
                        "(a dummy species cannot scatter X-rays)")
                frac.append(site.frac_coords)
                species.append(sp.symbol)
                occupancies.append(occu)
                b_iso.append(0.0 if b is None else b)
        lattice, positions = structure.lattice.matrix, np.array(frac, dtype=float)
        if np.linalg.det(lattice) < 0:
            lattice, positions = lattice[[1, 0, 2]], positions[:, [1, 0, 2]]
        return cls(lattice, positions, species, occupancies, b_iso)

    def to_pymatgen(self) -> Structure:
        """A pymatgen ``Structure``; entries at one position become one disordered site."""
        from pymatgen.core import Lattice, Structure

        groups = self._site_groups()
        _, first_entry = np.unique(groups, return_index=True)
        order = np.sort(first_entry)
        species, coords, b_site = [], [], []
        for first in order:
            members = np.flatnonzero(groups == groups[first])
            species.append({
                element_symbol(self.atomic_numbers[m]): float(self.occupancies[m])
                for m in members
            })
            coords.append(self.frac_coords[first])
            b_site.append(float(self.b_iso[first]))
        return Structure(Lattice(self.lattice), species, coords, site_properties={"b_iso": b_site})

    @classmethod
    def from_cif(cls, path: str | os.PathLike) -> Crystal:
        """Read the first structure of a CIF file (plain, or gzip/bz2/xz-compressed) through
        pymatgen's parser.

        The file is checked before pymatgen sees it (size ≤ ``LIMITS.max_file_mb``, text, lines ≤
        MAX_CIF_LINE characters, a positive cell that exists, finite coordinates, occupancies in
        [0, 1]), so a bad file is refused in our words with its name, never silently changed:
        pymatgen's warnings, and atom sites of occupancy 0 left out, come back as one
        :class:`CifWarning`.
        """
        text, name, notes = _read_cif_text(path)
        structure, parse_notes = _parse_cif(text, name)
        try:
            crystal = cls.from_pymatgen(structure)
        except ValueError as error:
            raise type(error)(f"CIF {name!r}: {error}") from None
        if notes + parse_notes:
            warnings.warn(f"CIF {name!r}: " + "; ".join(notes + parse_notes), CifWarning,
                          stacklevel=2)
        return crystal

    def to_cif(self, path: str | os.PathLike) -> None:
        """Write a CIF file (through pymatgen's writer)."""
        from pymatgen.io.cif import CifWriter

        CifWriter(self.to_pymatgen()).write_file(str(path))


def _counts(symbols: Iterable[str]) -> ItemsView[str, int]:
    seen: dict[str, int] = {}
    for symbol in symbols:
        seen[symbol] = seen.get(symbol, 0) + 1
    return seen.items()


def _structure_hint(value: object) -> str:
    """What to call instead of Crystal.from_pymatgen for ``value``."""
    from pymatgen.core import IMolecule

    if isinstance(value, Crystal):
        return "; it is already a Crystal"
    if isinstance(value, IMolecule):
        return ("; a Molecule has no lattice: put it in a box with "
                "molecule.get_boxed_structure(a, b, c)")
    if isinstance(value, (str, os.PathLike)):
        return "; to read a CIF file use Crystal.from_cif(path)"
    if isinstance(value, dict):
        return ("; for a dict from Structure.as_dict() use "
                "Crystal.from_pymatgen(Structure.from_dict(d))")
    if type(value).__module__.split(".")[0] == "ase":
        return "; convert ASE Atoms with pymatgen.io.ase.AseAtomsAdaptor.get_structure(atoms)"
    return ""


# ---------------------------------------------------------------------------- CIF reading

#: Magic bytes of the compressed files a CIF may come in, and the module that opens them.
_COMPRESSION = ((b"\x1f\x8b", gzip), (b"BZh", bz2), (b"\xfd7zXZ\x00", lzma))
#: Control characters that never occur in a text CIF (tab, newlines and form feed may).
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f]")
_CELL_LENGTHS = ("_cell_length_a", "_cell_length_b", "_cell_length_c")
_CELL_ANGLES = ("_cell_angle_alpha", "_cell_angle_beta", "_cell_angle_gamma")
_SITE_TAGS = ("_atom_site_label", "_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z")


def _cif_error(name: str, reason: str, kind: type[ValueError] = ValueError) -> ValueError:
    return kind(f"could not read a crystal structure from CIF {name!r}: {reason}")


def _read_cif_text(path: str | os.PathLike) -> tuple[str, str, list[str]]:
    """The text of a CIF file, its name for messages, and notes on bytes that were not UTF-8."""
    if not isinstance(path, (str, os.PathLike)):
        hint = ("; for a pymatgen Structure use Crystal.from_pymatgen"
                if hasattr(path, "lattice") else "")
        raise TypeError("Crystal.from_cif needs the path of a CIF file (str or pathlib.Path), "
                        f"got {describe(path)}{hint}")
    name, path = str(path), Path(path)
    if not path.exists():
        raise ValueError(f"CIF file {name!r} does not exist")
    if not path.is_file():
        raise ValueError(
            f"CIF path {name!r} is {'a directory' if path.is_dir() else 'a device or pipe'}, "
            "not a file")
    size_mb = path.stat().st_size / 2**20
    guard(size_mb, "max_file_mb", f"CIF file {name!r} of {size_mb:.1f} MiB")
    data = path.read_bytes()
    for magic, module in _COMPRESSION:
        if data.startswith(magic):
            limit = int(LIMITS.max_file_mb * 2**20)
            try:
                with module.open(io.BytesIO(data)) as stream:
                    data = stream.read(limit + 1)
            except (OSError, EOFError, lzma.LZMAError) as error:
                raise ValueError(
                    f"CIF file {name!r} is a damaged {module.__name__} archive ({error})") from None
            guard(
                len(data) / 2**20, "max_file_mb",
                f"CIF file {name!r} decompressed (over {limit / 2**20:g} MiB)")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise ValueError(f"CIF file {name!r} is UTF-16 (or UTF-32) text; save it as UTF-8 or ASCII")
    text = data.decode("utf-8-sig", errors="replace")
    if control := _CONTROL.search(text):
        raise ValueError(
            f"CIF file {name!r} is not a text CIF: it holds binary data "
            f"(byte {ord(control.group()):#04x} on line "
            f"{text.count(chr(10), 0, control.start()) + 1}); a CIF is ASCII or UTF-8 text")
    replaced = text.count("\ufffd")
    if replaced > max(8, len(text) // 100):
        raise ValueError(f"CIF file {name!r} is not UTF-8 text ({replaced:,} bytes are not); "
                         "save it as UTF-8 or ASCII")
    if not text.strip():
        raise ValueError(f"CIF file {name!r} is empty")
    lines = text.splitlines()
    longest = max(range(len(lines)), key=lambda i: len(lines[i]))
    if len(lines[longest]) > MAX_CIF_LINE:
        raise ValueError(f"CIF file {name!r} has a line of {len(lines[longest]):,} characters "
                         f"(line {longest + 1}), beyond "
                         f"MAX_CIF_LINE = {MAX_CIF_LINE:,} (the CIF standard allows 2048)")
    notes = ([f"{replaced} byte(s) that are not UTF-8 replaced (pymatgen then drops them)"]
             if replaced else [])
    return text, name, notes


def _parse_cif(text: str, name: str) -> tuple[Structure, list[str]]:
    """The first structure of a CIF's text (a pymatgen Structure), and notes to surface."""
    from pymatgen.io.cif import CifBlock, CifParser

    blocks = [
        "data_" + block for block in re.split(r"^\s*data_", "x\n" + text, flags=re.MULTILINE)[1:]
    ]
    if not blocks:
        raise _cif_error(
            name, "it holds no data block (the data of a CIF begin at a line 'data_<name>')")
    with_sites = [block for block in blocks if "_atom_site_fract_x" in block]
    if not with_sites:
        raise _cif_error(
            name,
            f"none of its {len(blocks):,} data block(s) lists atom sites (_atom_site_fract_x ...)")
    block_text = with_sites[0]
    notes: list[str] = []
    if len(with_sites) > 1:
        notes.append(f"it holds {len(with_sites):,} structures; "
                     f"read the first, {block_text.split(maxsplit=1)[0]}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            block = CifBlock.from_str(block_text)
        except (ZeroDivisionError, ValueError):
            reason = ("a loop_ whose values do not fill its columns "
                      "(a truncated file, or unquoted spaces in a value?)")
            raise _cif_error(name, reason) from None
        try:
            notes += _check_cif_block(block.data, block_text, name)
        except StructureError as error:
            raise _cif_error(name, str(error), StructureError) from None
        _check_cif_atoms(name, len(block.data["_atom_site_label"]), _symmetry_order(block.data))
        _check_operations(block.data, name)
        try:
            parser = CifParser.from_str(block_text)
            structure = parser.parse_structures(primitive=False, on_error="raise")[0]
        except Exception as error:
            raise _cif_error(name, _pymatgen_reason(error)) from error
    said: list[str] = []
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            said.append(str(warning.message))
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)
    # CifParser.from_str sets warnings on the instance it builds, which mypy does not see
    said += parser.warnings  # type: ignore[attr-defined]
    notes += [f"pymatgen: {' '.join(message.split())}" for message in dict.fromkeys(said)]
    return structure, notes


def _listed_operations(data: dict) -> list[str] | None:
    """The symmetry operations a CIF block lists, in the order pymatgen looks for them, or None."""
    for tag in ("_symmetry_equiv_pos_as_xyz", "_symmetry_equiv_pos_as_xyz_",
                "_space_group_symop_operation_xyz", "_space_group_symop_operation_xyz_"):
        if data.get(tag):
            return data[tag] if isinstance(data[tag], list) else [data[tag]]
    return None


def _symmetry_order(data: dict) -> int:
    """How many symmetry operations pymatgen will apply, at most: those listed, else the order of
    the space group named or numbered (192, the most any has, if pymatgen's table lacks the name),
    else 1."""
    from pymatgen.symmetry.groups import SYMM_DATA

    listed = _listed_operations(data)
    if listed:
        return len(listed)
    groups = SYMM_DATA["space_group_encoding"]
    orders = {re.sub(r"[\s_]", "", symbol): group["order"] for symbol, group in groups.items()}
    orders.update((re.sub(r"[\s_]", "", short), groups[full]["order"])
                  for short, full in SYMM_DATA["abbreviated_spacegroup_symbols"].items())
    orders.update((str(group["int_number"]), group["order"]) for group in groups.values())
    named = [
        value for tag, value in data.items()
        if isinstance(value, str) and value.strip() not in ("", "?", ".") and
        re.match(r"_(symmetry|space_group)_(space_group_name|name|int_tables_number|it_number)",
                 tag, re.I)
    ]
    return max((orders.get(re.sub(r"[\s_'\"]", "", value), 192) for value in named), default=1)


def _check_operations(data: dict, name: str) -> None:
    """Refuse a listed symmetry operation that is not one (pymatgen reads 'x, y' or 'a, b, c' as a
    singular map)."""
    from pymatgen.core.operations import SymmOp

    for operation in _listed_operations(data) or []:
        try:
            rotation = SymmOp.from_xyz_str(operation).rotation_matrix
            proper = operation.count(",") == 2 and abs(abs(np.linalg.det(rotation)) - 1) < 1e-6
        except (
                Exception
        ):  # pymatgen's reader of 'x, y, z' raises anything from IndexError to ZeroDivisionError
            proper = False
        if not proper:
            raise _cif_error(
                name,
                f"{operation!r} is not a symmetry operation such as 'x, y, z' or '-y, x-y, z+1/3'")


def _check_cif_atoms(name: str, n_sites: int, n_operations: int) -> None:
    """ResourceLimitError if atom sites × symmetry operations exceed ``LIMITS.max_cif_atoms``:
    pymatgen's parser takes time quadratic in them (~5 s for 4,000 atoms, ~8 min for 57,600 on one
    core)."""
    guard(
        n_sites * n_operations, "max_cif_atoms", lambda:
        (f"CIF {name!r} lists {n_sites:,} atom sites and {n_operations} "
         "symmetry operation(s): up to "
         f"{n_sites * n_operations:,} atoms, which"),
        "pymatgen's CIF parser takes time quadratic in the atoms of the cell")


def _check_cif_block(data: dict, text: str, name: str) -> list[str]:
    """Refuse what pymatgen would silently change (a negative cell length, negative occupancies,
    NaN) or take too long for (more than ``LIMITS.max_cif_atoms`` atoms), and note what it drops
    (atom sites of occupancy 0); a bad length or coordinate raises StructureError."""
    from pymatgen.io.cif import str2float

    def number(value: str, what: str) -> float:
        try:
            result = str2float(value)
        except (TypeError, ValueError):
            raise _cif_error(name, f"{what} is {value!r}, not a number") from None
        if not math.isfinite(result):
            raise _cif_error(name, f"{what} is {value!r}, not a finite number")
        return result

    missing = [tag for tag in _CELL_LENGTHS + _CELL_ANGLES if tag not in data]
    if missing and not any(
            data.get(tag) for tag in ("_symmetry_cell_setting", "_space_group_crystal_system")):
        raise _cif_error(name, f"it has no complete cell ({missing[0]} is missing)")
    for tag in _CELL_LENGTHS:
        if tag in data:
            length = number(data[tag], tag)
            if length <= 0:
                raise _cif_error(name, f"{tag} is {length:g}: a cell length must be positive")
            _check_cell_length(length, tag)
    angles = {tag: number(data[tag], tag) for tag in _CELL_ANGLES if tag in data}
    for tag, angle in angles.items():
        if not 0 < angle < 180:
            raise _cif_error(
                name, f"{tag} is {angle:g}°: a cell angle lies strictly between 0° and 180°")
    if len(angles) == 3 and (sum(angles.values()) >= 360 or
                             2 * max(angles.values()) >= sum(angles.values())):
        raise _cif_error(
            name, "the cell angles {:g}°, {:g}°, {:g}° describe no cell "
            "(that needs α + β + γ < 360° and each angle "
            "below the sum of the other two)".format(*angles.values()))
    for tag in _SITE_TAGS:
        if tag not in data:
            hint = " (it is in the text: inside an unclosed ';' text field?)" if tag in text else ""
            raise _cif_error(name, f"its atom_site loop lacks {tag}{hint}")
    columns = {
        tag: data[tag]
        for tag in _SITE_TAGS + ("_atom_site_type_symbol", "_atom_site_occupancy") if tag in data
    }
    if not all(isinstance(column, list) for column in columns.values()):
        raise _cif_error(
            name,
            "its atom sites are single values, not a loop_ (pymatgen reads them from a loop_ only)")
    if len({len(column) for column in columns.values()}) > 1:
        raise _cif_error(
            name,
            "its atom_site columns (label, type_symbol, fract_x/y/z, occupancy) differ in length")
    labels = columns["_atom_site_label"]
    _check_cif_atoms(name, len(labels),
                     1)  # before reading every site; the operations are counted later
    empty = []
    for index, label in enumerate(labels):
        for tag in _SITE_TAGS[1:]:
            what = f"{tag} of site {label!r}"
            _check_fractional(abs(number(columns[tag][index], what)), f"{what} is")
        occupancy = columns.get("_atom_site_occupancy", ["?"] * len(labels))[index]
        if occupancy.strip() == "?":
            continue  # unknown: pymatgen takes 1
        occupancy = number(occupancy, f"the occupancy of site {label!r}")
        if occupancy < 0 or occupancy > 1 + OCCUPANCY_TOL:
            raise _cif_error(name, f"site {label!r} has occupancy {occupancy:g}, outside [0, 1]")
        if occupancy == 0:
            empty.append(label)
    if len(empty) == len(labels):
        raise _cif_error(name, f"all its {len(labels):,} atom sites have occupancy 0")
    if empty:
        listed = ", ".join(empty[:5]) + (", ..." if len(empty) > 5 else "")
        return [f"{len(empty)} atom site(s) of occupancy 0 left out ({listed})"]
    return []


def _pymatgen_reason(error: Exception) -> str:
    """Why pymatgen's parser failed, in our words (its own message is kept as the exception's
    cause)."""
    cause = error.__cause__ or error
    message = str(cause)
    if "thickness=" in message:
        return "the cell is flat: a lattice-plane spacing is below 0.01 Å (check the cell angles)"
    if total := re.search(r"Occupancy ([\d.eE+-]+) exceeded tolerance", message):
        return f"atoms at one position have a total occupancy of {float(total.group(1)):g} > 1"
    if "no structures" in message:
        return "none of its atom sites could be read (labels and type symbols name no element?)"
    if isinstance(cause, NotImplementedError):
        return f"pymatgen cannot read this kind of structure ({message})"
    if isinstance(cause, KeyError):
        return f"it lacks the entry {message}, which pymatgen needs"
    return f"pymatgen's parser failed ({type(cause).__name__})"


def check_crystal(crystal: object, name: str = "crystal") -> Crystal:
    """``crystal`` if it is a :class:`Crystal`; a TypeError saying how to convert it otherwise."""
    refuse_pymatgen(crystal, name, "an xrdcore Crystal")
    return instance(
        crystal, name, Crystal, "use Crystal.from_pymatgen(structure) for a pymatgen Structure, "
        "Crystal.from_cif(path) for a CIF file")


def refuse_pymatgen(value: object, name: str, wanted: str) -> None:
    """TypeError for a pymatgen object where ``wanted`` is meant, saying how to convert it."""
    if type(value).__module__.startswith("pymatgen"):
        kind = type(value).__name__
        hint = ("a molecule has no lattice: box it (Molecule.get_boxed_structure) "
                "and convert that with "
                "Crystal.from_pymatgen"
                if "Molecule" in kind else "convert it with Crystal.from_pymatgen(structure)")
        raise TypeError(f"{name} must be {wanted}, got a pymatgen {kind}; {hint}")
