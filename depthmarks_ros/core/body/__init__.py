"""Body keypoints: backends, COCO-17 mapping, 3D lifting with covariance (ROS-free)."""
