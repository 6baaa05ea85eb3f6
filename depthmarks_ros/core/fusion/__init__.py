"""LiDAR-camera depth fusion (ROS-free): projection, completion, per-source sigma, fusion."""
