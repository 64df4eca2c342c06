"""Analysis pipelines shipped with dicomnode."""
