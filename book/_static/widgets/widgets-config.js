// Loaded between require.js and embed-amd.js on pages with embedded ipywidgets
// (book/_ext/offline_widgets.py). Keeps the widget manager inside the site: no CDN.
(function () {
  "use strict";
  var script = document.currentScript;
  var here = new URL(".", script.src).href; // .../_static/widgets/ (drops Sphinx's ?v=)
  // The bundled modules set webpack's public path (where the Font Awesome fonts are fetched
  // from) to the folder of their requirejs URL; by default that is the page's own folder.
  window.requirejs.config({
    paths: {
      "@jupyter-widgets/html-manager": here + "html-manager",
      "@jupyter-widgets/html-manager/dist/libembed-amd": here + "libembed-amd",
    },
  });
  window.__jupyter_widgets_assets_path__ = here; // the same, read by libembed itself
  // ipywidgets' own widgets (base, controls, output) are inside embed-amd.js. Any other widget
  // library would be fetched from a CDN: look for it in this folder instead, and nowhere else.
  script.setAttribute("data-jupyter-widgets-cdn", here + "npm/");
  script.setAttribute("data-jupyter-widgets-cdn-only", "");
  // ipywidgets typesets labels with MathJax 2's MathJax.Hub.Queue; the book serves MathJax 3,
  // so without this every widget with a description throws when the page has math. Widgets
  // render on window "load", after MathJax (a deferred script) has replaced its config object.
  window.addEventListener("load", function () {
    var mathjax = window.MathJax;
    if (!mathjax || mathjax.Hub || !mathjax.typesetPromise) return;
    mathjax.Hub = {
      Queue: function (job) {
        var element = job && job[2];
        var ready = (mathjax.startup && mathjax.startup.promise) || Promise.resolve();
        ready
          .then(function () { return mathjax.typesetPromise(element ? [element] : undefined); })
          .catch(function (error) { console.warn("MathJax could not typeset a widget label", error); });
      },
    };
  });
})();
