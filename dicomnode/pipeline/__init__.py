"""dicomnode.pipeline."""
