"""Small fixes that keep every page's browser console clean and the site off CDNs.

Found by ``make site-check`` (tests/site_check.py) on the Jupyter Book 1.x stack:

* Sphinx 7.4 re-registers inline scripts added after the builder started (as ``''`` instead of
  ``None``), so sphinx-thebe's ``const THEBE_JS_URL = ...`` appears twice and every page
  throws "Identifier 'THEBE_JS_URL' has already been declared": duplicates are dropped.
* Thebe is off in _config.yml (``launch_buttons.thebe: false``), yet its configuration script,
  which names a CDN (unpkg), lands on every page: it is left out when thebe is off.
* pydata-sphinx-theme logs "Got invalid theme mode" on a reader's first visit unless a default
  colour mode is set: ``default_mode = "auto"`` (what the theme falls back to anyway).
* The single-page build (``make pdf``) fails on folded cells ("unknown node type:
  HideCodeCellNode"): myst-nb registers its HTML visitors for the ``html`` builder only, and
  Sphinx falls back from ``singlehtml`` to them only when no extension registered any
  ``singlehtml`` visitor. Every ``html`` visitor missing for ``singlehtml`` is copied over.
"""

from __future__ import annotations


def _default_mode(app, config):
    config.html_context.setdefault("default_mode", "auto")


def _thebe_enabled(app) -> bool:
    launch = app.config.html_theme_options.get("launch_buttons", {}) or {}
    return bool(launch.get("thebe")) or bool(getattr(app.config, "use_thebe", False))


def _clean_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    thebe = _thebe_enabled(app)
    seen, kept = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {}) or {}
        body = str(attributes.get("body", ""))
        if not thebe and "THEBE_JS_URL" in body:
            continue
        key = (str(script.filename or ""), tuple(sorted(
            (k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def _singlehtml_visitors(app):
    handlers = app.registry.translation_handlers
    single = handlers.setdefault("singlehtml", {})
    for node, visitors in handlers.get("html", {}).items():
        single.setdefault(node, visitors)


def setup(app):
    app.connect("builder-inited", _singlehtml_visitors)
    app.connect("config-inited", _default_mode)
    # After every other handler (priority 500) has added its page scripts.
    app.connect("html-page-context", _clean_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
