"""Compute kernels: ``cpu`` (numba, the fast path), ``reference`` (plain numpy, for tests),
``batched`` (many structures at once, CPU) and ``cuda`` (the same batch on a GPU).

Every numba kernel in ``cpu`` has a twin of the same name in ``reference`` that computes the
same quantity the obvious way; the test suite checks they agree. The batched kernels are
checked against the single-structure path, and the CUDA kernels against the batched CPU
kernels (on machines without a GPU through numba's CUDA simulator).

The backend is chosen in one place, :func:`select_backend`.
"""

from __future__ import annotations

from xrdcore.validation import choice

BACKENDS = ("auto", "cpu", "cuda")
#: What a request probably meant, for names that are not a backend (compared in lower case).
BACKEND_ALIASES = {
    "gpu": "cuda",
    "nvidia": "cuda",
    "numba": "cpu",
    "host": "cpu",
    "default": "auto"
}

SIMULATOR_HINT = (
    "set the environment variable NUMBA_ENABLE_CUDASIM=1 before Python starts to run the CUDA "
    "kernels in numba's CUDA simulator (correct but slow: for tests), or use backend='cpu'")


def cuda_available() -> bool:
    """True when numba can reach a CUDA GPU, or its simulator is enabled."""
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # a broken driver install is "no GPU", not a crash
        return False


def real_gpu_available() -> bool:
    """True only for a physical GPU (not the simulator)."""
    from numba import config

    # ENABLE_CUDASIM is set at run time (numba.core.config.process_environ): unseen by mypy
    return cuda_available() and not config.ENABLE_CUDASIM  # type: ignore[attr-defined]


def select_backend(name: str = "auto") -> str:
    """Resolve a backend request to "cpu" or "cuda".

    "auto" picks CUDA only when a physical GPU is present; "cuda" without a GPU (and without
    the simulator) is a clear error that names the simulator option; an unknown name is a
    ValueError that suggests the backend probably meant ("GPU" → "cuda").
    """
    if isinstance(name, str) and name not in BACKENDS:
        meant = BACKEND_ALIASES.get(name.strip().lower(), name.strip().lower())
        if meant in BACKENDS:
            raise ValueError(
                f"unknown backend {name!r}; did you mean {meant!r}? (choose one of {BACKENDS})")
    choice(name, "backend", BACKENDS)
    if name == "cpu":
        return "cpu"
    if name == "auto":
        return "cuda" if real_gpu_available() else "cpu"
    if not cuda_available():
        raise RuntimeError(
            f"backend='cuda' was requested but no CUDA GPU is available; {SIMULATOR_HINT}")
    return "cuda"
