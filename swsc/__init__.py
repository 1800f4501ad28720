"""swsc: the Stepwise Weighted Spike compiler.

Reads quantized ONNX models and compiles them to SWS-coded spiking networks
(ternary spikes, TSA neurons) that run in a numpy interpreter or as generated C.
"""
__version__ = "0.1.0"
