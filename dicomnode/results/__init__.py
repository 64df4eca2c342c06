"""dicomnode.results."""
