"""The corpus tests' one check: a bad input is refused with our error, in our words, quickly."""

from __future__ import annotations

import re
import signal
import time

import pytest

#: No bad input may take longer than this to be refused (s); a hang fails the test, not CI.
TIME_LIMIT = 20.0


def rejects(call, error: type[BaseException], phrase: str,
            seconds: float = TIME_LIMIT) -> BaseException:
    """Run ``call()``; pass when it raises ``error`` (or a subclass) whose message contains
    ``phrase`` (a regular expression, searched case-insensitively) within ``seconds``."""

    def too_slow(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    begin = time.perf_counter()
    try:
        with pytest.raises(error) as caught:
            call()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    elapsed = time.perf_counter() - begin
    message = str(caught.value)
    assert re.search(phrase, message, re.IGNORECASE), f"message {message!r} lacks {phrase!r}"
    assert "Traceback" not in message and len(message) < 2000, message
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    return caught.value
