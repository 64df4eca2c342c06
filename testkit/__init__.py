"""Helpers shared by the tests and the benchmarks: DICOM generators, the node as a subprocess,
peers, hostile clients, fuzz mutators, PKI; never shipped (``pip install .`` leaves it out)."""
