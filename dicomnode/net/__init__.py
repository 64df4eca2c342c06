"""dicomnode.net."""
