"""Compiled Edge TPU model files: the study's benchmark catalog, building and compiling models,
reading the ``DWN1`` package inside ``*_edgetpu.tflite`` files, and reconciling the bytes a model
predicts with the bytes seen on the wire."""
