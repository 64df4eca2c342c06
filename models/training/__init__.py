"""Training of the demo weights on synthetic phantoms (see ``models/train.py``)."""
