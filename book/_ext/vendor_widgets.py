"""Refresh the vendored Jupyter-widgets JavaScript in book/_static/widgets/ from the npm registry.

Run by hand (``make vendor-widgets``) only to change versions; ``make book`` never needs npm or
the network, because the files it serves are committed. Each package tarball is fetched with
``npm pack`` at the exact version below, checked against its pinned sha512 integrity, and only
the files the static site loads are extracted. PROVENANCE.md is rewritten with the sha256 of
every vendored file; tests/test_site.py checks the files against it.

Why vendored rather than installed from npm at build time: CI and readers' machines have
Python only, and the book must build offline; the files are a few MB and change rarely.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "_static" / "widgets"

#: (package, exact version, npm dist.integrity, {path in the tarball: vendored name})
PACKAGES = [
    ("requirejs", "2.3.8",
     "sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw==",
     {
         "package/require.js": "require.js"
     }),
    (
        "@jupyter-widgets/html-manager",
        "1.0.15",
        "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        {
            "package/dist/embed-amd.js": "embed-amd.js",
            "package/dist/embed.js.LICENSE.txt": "THIRD-PARTY-NOTICES.txt",
            # Font Awesome 5 web fonts (solid, regular, brands) for widget icons. The bundle's CSS
            # lists eot/woff2/woff/ttf/svg; browsers take the first format they support, woff2
            # (woff kept as the fallback), so the eot/ttf/svg copies (3 MB) are left out.
            "package/dist/d878b0a6a1144760244f.woff2": "d878b0a6a1144760244f.woff2",
            "package/dist/7a3337626410ca2f4071.woff2": "7a3337626410ca2f4071.woff2",
            "package/dist/1551f4f60c37af51121f.woff2": "1551f4f60c37af51121f.woff2",
            "package/dist/eeccf4f66002c6f2ba24.woff": "eeccf4f66002c6f2ba24.woff",
            "package/dist/bb58e57c48a3e911f15f.woff": "bb58e57c48a3e911f15f.woff",
            "package/dist/2285773e6b4b172f07d9.woff": "2285773e6b4b172f07d9.woff"
        }),
    (
        # Only its licence: the fonts above are Font Awesome Free 5.15.4, bundled by html-manager.
        "@fortawesome/fontawesome-free",
        "5.15.4",
        "sha512-eYm8vijH/hpzr/6/1CJ/V/Eb1xQFW2nnUKArb3z+yUWv7HTwj6M7SP957oMjfZjAHU6qpoNc2wQvIxBLWYa/Jg==",
        {
            "package/LICENSE.txt": "LICENSE-fontawesome.txt"
        })
]

#: Written by hand, not from npm (the npm tarballs carry no licence file for these two).
LOCAL_FILES = {
    "widgets-config.js": "ours (MIT, this repository): points the embed manager at this folder",
    "LICENSE-ipywidgets.txt": (
        "BSD-3-Clause text of jupyter-widgets/ipywidgets (html-manager's repository)"),
    "LICENSE-requirejs.txt": "MIT/BSD text of requirejs/requirejs"
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch() -> list[tuple[str, str, str, str]]:
    rows = []
    TARGET.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, version, integrity, files in PACKAGES:
            spec = f"{name}@{version}"
            out = subprocess.run(["npm", "pack", spec, "--pack-destination", tmp, "--json"],
                                 check=True, capture_output=True, text=True)
            tarball = Path(tmp) / json.loads(out.stdout)[0]["filename"]
            if _integrity(tarball) != integrity:
                sys.exit(f"{spec}: tarball integrity {_integrity(tarball)} != pinned {integrity}")
            with tarfile.open(tarball) as tar:
                for member, vendored in files.items():
                    (TARGET / vendored).write_bytes(tar.extractfile(member).read())
                    rows.append((vendored, spec, member.removeprefix("package/"),
                                 sha256(TARGET / vendored)))
    return rows


def write_provenance(rows) -> None:
    lines = [
        "# Vendored Jupyter-widgets JavaScript", "",
        "Served from the site's `_static/widgets/` so that pages with embedded ipywidgets render",
        "offline (no CDN). Refresh with `make vendor-widgets` "
        "(book/_ext/vendor_widgets.py: npm pack",
        "at the exact versions below, sha512-checked); book/_ext/offline_widgets.py wires them in.",
        "", "| file | from (npm) | path in the package | sha256 |", "| --- | --- | --- | --- |"
    ]
    lines += [f"| {f} | {spec} | {member} | {digest} |" for f, spec, member, digest in rows]
    lines += ["", "Not from npm:", ""]
    lines += [f"- `{f}`: {what}" for f, what in LOCAL_FILES.items()]
    lines += [
        "", "Licences: html-manager and ipywidgets BSD-3-Clause (LICENSE-ipywidgets.txt), the",
        "libraries bundled into embed-amd.js (THIRD-PARTY-NOTICES.txt), RequireJS MIT",
        "(LICENSE-requirejs.txt), Font Awesome Free fonts SIL OFL 1.1 (LICENSE-fontawesome.txt).",
        ""
    ]
    (TARGET / "PROVENANCE.md").write_text("\n".join(lines))


def main() -> None:
    write_provenance(fetch())
    print(f"vendored into {TARGET}")


if __name__ == "__main__":
    main()
