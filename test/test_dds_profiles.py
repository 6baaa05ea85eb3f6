"""The package's Fast DDS profiles (config/fastdds_localhost.xml, config/fastdds_network.xml) turn
XTypes type propagation off: Fast DDS 3.2's TypeLookup reply thread crashed a node now and then while
nodes discovered each other (SIGSEGV in TypeLookupManager::notify_callbacks; docs/pipeline.md,
Stopping), and that path only runs for endpoints that carry type information."""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from depthmarks_ros.pipeline.graph import package_config_dir
from depthmarks_ros.pipeline.publication import LOOPBACK_PROFILE, NETWORK_PROFILE, PROFILES_ENV, loopback_profile

Q = '{http://www.eprosima.com}'
PROFILES = (LOOPBACK_PROFILE, NETWORK_PROFILE)


def _type_propagation(path):
    participant = next(p for p in ET.parse(path).getroot().iter(f'{Q}participant') if p.get('is_default_profile') == 'true')
    props = {p.findtext(f'{Q}name'): p.findtext(f'{Q}value')
             for p in participant.iter(f'{Q}property')}
    return props.get('fastdds.type_propagation')


@pytest.mark.parametrize('name', PROFILES)
def test_the_default_participant_propagates_no_types(name):
    assert _type_propagation(os.path.join(package_config_dir(), name)) == 'disabled'


@pytest.mark.dds
def test_fast_dds_reads_the_property_where_the_profile_puts_it(tmp_path):
    """A value Fast DDS does not know makes it refuse the participant: the property is read from there
    (so 'disabled' is in effect), and the shipped profile starts a node."""
    src = open(loopback_profile()).read()
    bad = tmp_path / 'bad.xml'
    bad.write_text(src.replace('<value>disabled</value>', '<value>nonsense</value>'))
    child = 'import rclpy; rclpy.init(); rclpy.create_node("profile_probe"); print("node started")'
    for path, started in ((loopback_profile(), True), (str(bad), False)):
        env = dict(os.environ, **{PROFILES_ENV: path})
        out = subprocess.run([sys.executable, '-c', child], env=env, capture_output=True, text=True, timeout=60)
        assert ('node started' in out.stdout) == started, (path, out.stdout, out.stderr[-800:])
