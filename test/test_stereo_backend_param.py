"""stereo_depth's `backend` changed at run time over the parameter service: a backend that cannot
start is refused in the on-set callback with the reason, so `ros2 param get`, `self.p` and the live
backend keep agreeing; one that starts is switched to."""
import pytest


@pytest.mark.dds
def test_a_backend_that_cannot_start_is_refused_and_service_p_and_backend_agree(probe):
    from depthmarks_ros.nodes.stereo_depth import StereoDepthNode
    from rclpy.parameter import Parameter
    # backend coarse_to_fine_census (the default); the learned backend's model (model_path is read-only) cannot be loaded
    node = StereoDepthNode(parameter_overrides=[Parameter('model_path', value='/nonexistent/net.onnx')])
    probe.add_node(node)
    params = probe.param_service('stereo_depth')

    def agree(name):
        assert params.get(['backend']) == [name] and node.p.backend == name and node.chain.backend_name == name

    (res,) = params.set(backend='learned')   # its model cannot be loaded: it cannot start
    assert not res.successful and "backend: 'learned' cannot start" in res.reason, res.reason
    agree('coarse_to_fine_census')
    (res,) = params.set(backend='coarse_to_fine')
    assert res.successful, res.reason
    agree('coarse_to_fine')
    (res,) = params.set(backend='learned')
    assert not res.successful
    agree('coarse_to_fine')
    (res,) = params.set(disparity_range=96)           # a later change applies nothing refused earlier
    assert res.successful
    agree('coarse_to_fine')
