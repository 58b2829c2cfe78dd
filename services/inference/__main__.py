"""``python -m services.inference``: run one inference worker."""

import logging
import os
import sys

from .main import main

code = main()
# TensorFlow's own teardown at interpreter exit takes about a second, longer than the
# contract allows from SIGTERM to exit; everything of ours is closed by now, so skip it.
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
