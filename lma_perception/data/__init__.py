"""Data: the synthetic driving video generator, Cityscapes-style trees, and rosbag2 I/O."""
