"""Real-time video semantic segmentation for ROS 2: ERFNet with Local Memory Attention."""

__version__ = '0.1.0'
