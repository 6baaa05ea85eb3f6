"""Monocular depth (ROS-free): model loading and inference, metric alignment."""
