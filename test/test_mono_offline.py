"""Loading a monocular depth model never changes the process environment (no HF_HUB_OFFLINE set
behind the caller's back) and, without allow_download, never asks the network for the model: the
hub is asked with local_files_only, and a missing model is still the clear ModelNotFound."""
import os
import socket

import pytest

from depthmarks_ros.core.mono.models import ModelNotFound, hub_offline, load_depth_model

pytest.importorskip('transformers')


def test_loading_an_uncached_hub_id_leaves_the_environment_alone_and_the_network_unused(monkeypatch):
    import huggingface_hub.constants
    for name in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE'):
        monkeypatch.delenv(name, raising=False)
    # huggingface_hub's own telemetry (its user-agent looks up an "agent harness" registry online once
    # per process unless HF_HUB_DISABLE_TELEMETRY / HF_HUB_OFFLINE) is not a model request: off here
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_DISABLE_TELEMETRY', True)
    connects = []

    def no_network(*args, **kwargs):
        connects.append(args)
        raise OSError('network used in a test')
    monkeypatch.setattr(socket, 'getaddrinfo', no_network)        # a name look-up or a connection
    monkeypatch.setattr(socket.socket, 'connect', no_network)
    before = dict(os.environ)
    with pytest.raises(ModelNotFound, match='download-model'):
        load_depth_model('depthmarks-test/not-in-any-cache')
    assert dict(os.environ) == before and connects == []


def test_hub_offline_reads_the_environment_as_huggingface_hub_does(monkeypatch):
    monkeypatch.delenv('TRANSFORMERS_OFFLINE', raising=False)
    for value, offline in (('1', True), ('true', True), ('YES', True), ('0', False), ('', False), ('false', False)):
        monkeypatch.setenv('HF_HUB_OFFLINE', value)
        assert hub_offline() is offline, value
    monkeypatch.delenv('HF_HUB_OFFLINE')
    assert not hub_offline()
    monkeypatch.setenv('TRANSFORMERS_OFFLINE', '1')
    assert hub_offline()
