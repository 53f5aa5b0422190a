"""Synthetic driving video with dense ground truth, written in the Cityscapes layout.

A procedural renderer (scene layout, props, textures, camera motion, degradations) kept apart
from dataset I/O (`lma_perception.data`); `generator` is its entry point.
"""
