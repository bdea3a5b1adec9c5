"""Tell xrdcore.teaching.widgets that this is the static-site build: explorers render as precomputed
animations with their own slider (no kernel on the site). The executing kernels inherit
the environment of the build process."""

import os


def setup(app):
    os.environ["XRDCORE_STATIC_WIDGETS"] = "1"
    return {"parallel_read_safe": True, "parallel_write_safe": True}
