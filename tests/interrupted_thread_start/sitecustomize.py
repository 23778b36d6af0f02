"""Put on PYTHONPATH by tests/test_run_safety.py: SIGTERM while loky starts its pool's manager thread.

When the bootstrap's pool starts its manager thread, this sends SIGTERM to the process and waits for
the handler to run, before the thread is started: the interruption lands where it did on a busy CI
machine, and whatever stops the pool afterwards finds a thread that was never started (joining it
raises "cannot join thread before it is started"). The file INTERRUPTED_THREAD_START + ".raised"
records that the handler ran there.
"""

import os
import signal
import threading
from pathlib import Path

_mark = Path(os.environ["INTERRUPTED_THREAD_START"])
_start = threading.Thread.start
_sent = False


def _start_after_a_sigterm(self) -> None:
    global _sent
    if not _sent and "ExecutorManagerThread" in type(self).__name__:
        _sent = True
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(10_000_000):  # the handler runs at the next check Python makes, in this loop
                pass
        except BaseException:
            _mark.with_name(_mark.name + ".raised").write_text(
                "SIGTERM landed as the manager thread started\n"
            )
            raise
    _start(self)


threading.Thread.start = _start_after_a_sigterm
