"""Put on PYTHONPATH by tests/test_run_safety.py: a Ctrl-C that lands where Python cannot raise it.

Once the run's temporary folder (``.NAME.*.tmp-*`` beside LOST_INTERRUPT_OUT) exists, the next garbage
collection in the main thread sends SIGINT to this process and waits inside the collector's callback
for the handler to run. Python reports an exception raised there ("Exception ignored in ...") and goes
on, as it does in a fork hook, where such an interrupt was lost on a busy CI machine. The file
LOST_INTERRUPT_OUT + ".raised" records that the handler ran inside the callback.
"""

import gc
import os
import signal
import threading
from pathlib import Path

_out = Path(os.environ["LOST_INTERRUPT_OUT"])
_sent = False


def _interrupt_inside_the_collector(phase: str, info: dict) -> None:
    global _sent
    if _sent or phase != "stop" or threading.current_thread() is not threading.main_thread():
        return
    if not any(n.startswith(f".{_out.name}.") and ".tmp-" in n for n in os.listdir(_out.parent)):
        return
    _sent = True
    try:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10_000_000):  # the handler runs at the next check Python makes, in this loop
            pass
    except BaseException:
        Path(f"{_out}.raised").write_text("the interrupt was raised inside a gc callback\n")
        raise


gc.callbacks.append(_interrupt_inside_the_collector)
