"""Runtimes: the integer reference evaluator, the SWS numpy interpreter, the C backend."""
