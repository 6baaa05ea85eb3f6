"""The pipeline split across two hosts: network namespaces joined by a veth pair.

Host a runs the sensor side (sim_rig), host b the processing side (stereo_depth, depth_fusion)
and a probe process; DDS goes over the shipped network profile (config/fastdds_network.xml),
with subnet discovery and with a Discovery Server. Checks that every output arrives at rate
with correct content (depth against the rig's ground truth, which also crosses the link) and
that the images really crossed the veth link. Needs root (skipped with the reason otherwise);
no traffic leaves the namespaces (they hold only their loopback and the veth pair).
"""
import pytest

from depthmarks_ros.testing.netns import netns_unavailable
from depthmarks_ros.testing.split_run import discovery_server_command, run_split

_WHY = netns_unavailable()
pytestmark = [pytest.mark.dds, pytest.mark.slow, pytest.mark.skipif(_WHY is not None, reason=str(_WHY))]

OUTPUTS = [('stereo/depth', 'sensor_msgs/msg/Image'), ('stereo/disparity', 'stereo_msgs/msg/DisparityImage'),
           ('fusion/depth', 'sensor_msgs/msg/Image'), ('fusion/depth_sigma', 'sensor_msgs/msg/Image')]
# 320x240 keeps the test cheap on 2 cores; bench_multihost.py measures 640x480
SIM = {'width': 320, 'height': 240}
PLACEMENT = {'a': [('sim_rig', SIM)], 'b': [('stereo_depth', {}), ('depth_fusion', {'use_stereo': True})]}


@pytest.mark.parametrize('discovery', ['subnet', 'server'])
def test_pipeline_split_across_two_hosts(discovery):
    if discovery == 'server' and discovery_server_command('127.0.0.1')[0] is None:
        pytest.skip('the fastdds discovery tool is not installed')
    res = run_split(PLACEMENT, OUTPUTS, probe_host='b', discovery=discovery, duration=5.0)
    logs = res.pop('_logs')
    for topic, _ in OUTPUTS:
        r = res[topic]
        assert r['count'] > 0, f'{topic} never arrived over {discovery} discovery: {logs}'
        # the rate target is a benchmark figure (bench_multihost.py); here: it keeps flowing
        # (10 Hz input; > 2 Hz even when the 2 cores are shared with other work)
        assert r['rate_hz'] > 2.0, (topic, r)
    # content: stereo and fused depth match the simulator's ground truth (sent by host a)
    assert res['stereo/depth']['mae'] < 0.25, res['stereo/depth']
    assert res['fusion/depth']['mae'] < 0.35, res['fusion/depth']
    assert res['stereo/disparity']['bad2'] < 0.1, res['stereo/disparity']
    # the sensor images crossed the link: 5 s of at least 1 MB/s (the rig sends ~7 MB/s here)
    assert res['_veth_tx']['a'] > 5 * 1e6, res['_veth_tx']
    assert set(res['_codes'].values()) == {0}, (res['_codes'], logs)
