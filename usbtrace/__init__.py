"""usbtrace: USB traffic capture and protocol analysis for the Coral Edge TPU USB Accelerator."""

__version__ = "0.1.0"
