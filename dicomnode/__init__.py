"""dicomnode: a PACS-integrated DICOM node that analyses imaging studies (research use only)."""

import logging

__version__ = "0.1.0"
__all__ = ["__version__"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
