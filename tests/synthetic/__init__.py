"""Tests of dicomnode.synthetic."""
