"""The whole pipeline in one process (for machines without `ros2 launch`), recording and reports."""
