"""dicomnode.assembly."""
