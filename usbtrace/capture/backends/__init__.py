"""Ways to make the Edge TPU work during a capture, behind one interface (``base.Backend``)."""
