"""dicomnode.jobs."""
