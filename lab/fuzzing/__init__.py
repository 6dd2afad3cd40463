"""Malformed-capture generation for usbtrace's robustness campaign (``scripts/fuzz.py``, tests).

``session`` builds valid usbmon sessions of an Edge TPU, ``encode`` writes them as pcapng or pcap
in either byte order while remembering where each block starts, ``mutate`` breaks them in the ways
real captures break, and ``oracle`` runs the CLI on the result and checks the documented contract.
"""
