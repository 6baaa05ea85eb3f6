"""depthmarks_ros: 3D perception from cameras and LiDAR for ROS 2 (see README.md).

Importing the package caps OpenBLAS (numpy's BLAS) at one thread unless ``OPENBLAS_NUM_THREADS``
is already set: the package's numpy linear algebra is on small matrices, and OpenBLAS's spare
thread busy-waits between calls; on the 2-core pipeline benchmark that took ~0.25 of a core from
the nodes (whole process 1.93 -> 1.69 cores at the same rates). It only takes effect when the
package is imported before numpy (node processes, `depthmarks` commands).
"""
import os as _os

_os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
