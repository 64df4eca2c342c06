"""dicomnode.export."""
