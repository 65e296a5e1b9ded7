"""`python -m jpegplus`: the jpegplus command line (see jpegplus.cli)."""
import sys

from .cli import main

sys.exit(main())
