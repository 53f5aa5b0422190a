"""All code that needs rclpy lives here; the rest of the package imports without ROS."""
