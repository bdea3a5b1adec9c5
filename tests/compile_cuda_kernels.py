"""Compile every CUDA kernel of xrdcore.kernels.cuda to PTX (no GPU needed, libNVVM is).

Run as a script with NUMBA_ENABLE_CUDASIM unset or 0 (test_batch.py does this in a
subprocess): the simulator never compiles, so this is what catches code that runs in the
simulator but would not build for a real GPU. Prints one line per kernel and dtype.
"""

import sys

import numba.cuda.dispatcher
from numba import float32, float64, int64
from numba.cuda import compile_ptx

from xrdcore.kernels import cuda as kernels

COMPUTE_CAPABILITY = (8, 0)


class _TargetDevice:
    """Stands in for a GPU when numba compiles a device function called by a kernel: it only
    asks the current device for its compute capability (no driver on a GPU-less machine)."""

    compute_capability = COMPUTE_CAPABILITY


numba.cuda.dispatcher.get_current_device = _TargetDevice


def signatures(real):
    a1, a2, a3 = real[:], real[:, :], real[:, :, :]
    return {
        "_metric_kernel": (a3, a2),
        "_forward_kernel": (a2, a3, a2, int64[:], a1, a3, a1, a2, real, a1, real, real, real, a2,
                            a2, a2, a2, a2, a3, a3, a3, a2, a2),
        "_cosine_kernel": (a2, a1, a1, a2),
        "_reflection_adjoint_kernel": (a2, a1, real, real, real, real, a2, a2, a2, a2, a2, a3, a2,
                                       a2, a2),
        "_atom_adjoint_kernel": (a2, a3, a2, int64[:], a3, a2, a3, a3),
        "_lattice_adjoint_kernel": (a3, a2, a2, a2, a2, a3),
        "_descent_kernel": (a1, a1, real)
    }


def main():
    for real in (float64, float32):
        for name, argument_types in signatures(real).items():
            compile_ptx(getattr(kernels, name).py_func, argument_types, cc=COMPUTE_CAPABILITY)
            print(f"compiled {name} ({real})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
