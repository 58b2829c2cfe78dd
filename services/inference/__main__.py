"""``python -m services.inference``: run one inference worker."""

import logging
import os
import sys

from shared.early_exit import exit_on_stop_signal

exit_on_stop_signal()  # before the imports: a stop while starting is a clean exit

from .main import main  # noqa: E402

code = main()
# TensorFlow's own teardown at interpreter exit takes about a second, longer than the
# contract allows from SIGTERM to exit; everything of ours is closed by now, so skip it.
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
