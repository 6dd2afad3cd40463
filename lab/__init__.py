"""The lab: what tests, benchmarks and the VM testbed use, never shipped in the wheel.

* ``lab.usb``: the one record model (``UsbRecord``), its one writer (pcapng and pcap) and the
  one USB descriptor builder, which every generator below uses.
* ``lab.synthetic``: the simulator behind the synthetic captures.
* ``lab.fuzzing``: the mutator and oracle of the fuzz campaign (``scripts/fuzz.py``).
* ``lab.testbed``: the emulated Edge TPU and the VM runner.

The product (``usbtrace/``) never imports from here; the lab imports the product.
"""
