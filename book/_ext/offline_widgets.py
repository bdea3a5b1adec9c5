"""Serve the Jupyter-widgets JavaScript from the built site itself, never from a CDN.

myst-nb embeds the state of ipywidgets in a page and, by default, loads require.js and
@jupyter-widgets/html-manager's ``embed-amd.js`` from cdnjs/jsDelivr. This extension points
``nb_ipywidgets_js`` at copies vendored in ``book/_static/widgets/`` (see PROVENANCE.md there;
refreshed by ``make vendor-widgets``) and adds that folder to the site's ``_static/``:

1. ``require.js``          RequireJS 2.3.8 (the embed bundle is a set of AMD modules);
2. ``widgets-config.js``   ours: makes the bundle look for its fonts and for any non-ipywidgets
                           widget module in ``_static/widgets/``, and never on a CDN;
3. ``embed-amd.js``        html-manager 1.0.15: ipywidgets 8 base, controls and output widgets
                           (and their ipywidgets 7 versions), renders every embedded view.

Only pages that embed widget state load these scripts (myst-nb adds them per page).

matplotlib's ``Animation.to_jshtml()`` (the kernel-free animation player) links Font Awesome 4
from a CDN for its button icons; the link is removed from the page, because the theme's own
Font Awesome (pydata-sphinx-theme's ``fontawesome.js``, served locally) draws those icons.
"""

from __future__ import annotations

import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "_static"  # book/_static -> the site's _static/
FOLDER = "widgets"
SCRIPTS = ["require.js", "widgets-config.js", "embed-amd.js"]  # load order matters


def _use_local_widget_js(app, config):
    missing = [name for name in SCRIPTS if not (STATIC / FOLDER / name).is_file()]
    if missing:
        raise RuntimeError(f"vendored widget JavaScript missing from {STATIC / FOLDER}: {missing}")
    # Sphinx reads relative script paths from _static/, relative to each page.
    config.nb_ipywidgets_js = {f"{FOLDER}/{name}": {} for name in SCRIPTS}
    if str(STATIC) not in map(str, config.html_static_path):
        config.html_static_path = [*config.html_static_path, str(STATIC)]


# The stylesheet link at the top of every to_jshtml output (matplotlib/_animation_data.py).
ANIMATION_CDN_CSS = re.compile(
    r'<link[^>]*href="https?://[^"]*/font-awesome/[^"]*font-awesome(\.min)?\.css"[^>]*>\s*', re.I)


def _drop_animation_cdn_css(app, pagename, templatename, context, doctree):
    body = context.get("body")
    if body and "font-awesome" in body:
        context["body"] = ANIMATION_CDN_CSS.sub("", body)


def setup(app):
    app.setup_extension("myst_nb")  # defines nb_ipywidgets_js
    app.connect("config-inited", _use_local_widget_js)
    app.connect("html-page-context", _drop_animation_cdn_css)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
