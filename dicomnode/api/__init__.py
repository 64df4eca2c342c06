"""dicomnode.api."""
