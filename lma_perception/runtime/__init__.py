"""Inference runtime: the engine that batches cameras through one model; image codecs."""
