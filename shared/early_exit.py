"""A stop signal before a service is up ends it cleanly: status 0, one line, not killed.

supervisord calls a program running once it has stayed up for ``startsecs``, and a user may
stop the pipeline at any moment after that; on a busy machine the service may still be
importing numpy, OpenCV or ZeroMQ then, before ``runtime.install_stop_handlers``. Without a
handler, SIGTERM would kill it (supervisord logs "terminated by SIGTERM"); with this one,
installed first thing in each service's ``__main__``, it exits with status 0. Standard
library only, so that installing it costs nothing.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

__all__ = ["exit_on_stop_signal"]


def _exit(signum: int, _frame: FrameType | None) -> None:
    print(f"{signal.Signals(signum).name} while starting: stopping", file=sys.stderr, flush=True)
    # Not SystemExit: raised wherever the signal lands, an exception can break a native
    # module's import half-way (pydantic-core's Rust code panicked so, printing a traceback),
    # and nothing is open yet that an unwinding would close.
    os._exit(0)


def exit_on_stop_signal() -> None:
    """Until the service installs its own handlers, SIGTERM or SIGINT end the process at once
    with status 0 (nothing is open yet: sockets and sources come after the service's
    handlers)."""
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
