"""Shared parts of the shipped pipelines: DICOM reading, grids, components, bundle access."""
