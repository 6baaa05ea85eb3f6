"""Face landmarks with uncertainty, 3D lifting and head pose (ROS-free)."""
