"""Uncertainty-aware landmark learning (ROS-free, PyTorch): Gaussian NLL losses (spherical, diagonal,
full 2x2 via Cholesky), the LUVLi visibility term, a compact patch model, data, training, evaluation."""
