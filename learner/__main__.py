"""``python -m learner``: the same as ``streamrec learner``."""
import sys

from learner.main import main

sys.exit(main())
