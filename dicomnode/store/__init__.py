"""dicomnode.store."""
