"""dicomnode.synthetic."""
