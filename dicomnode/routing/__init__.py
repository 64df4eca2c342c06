"""dicomnode.routing."""
