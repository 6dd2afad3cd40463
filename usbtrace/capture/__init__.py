"""The capture runner: records the usbmon traffic of an Edge TPU model run with dumpcap.

``preflight`` checks the host, ``dumpcap`` owns the dumpcap process, ``backends`` run the model
(TFLite delegate, pycoral, or a replay of a recorded session), ``runner`` ties them together and
appends usbtrace's metadata block to the finished file.
"""
