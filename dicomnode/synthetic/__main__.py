"""``python -m dicomnode.synthetic``: write a synthetic study (see :mod:`._cli`)."""

import sys

from dicomnode.synthetic._cli import main

sys.exit(main())
