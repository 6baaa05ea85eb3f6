"""The KITTI preset (config/kitti/depth_fusion.yaml) is fuse-kitti's defaults and a valid parameter
file of the node: node and command compute the same fusion with it."""
import argparse

import pytest
from rclpy.parameter import Parameter

from depthmarks_ros.cli import fuse_kitti
from depthmarks_ros.core.fusion.learned import resolve_sigma_model
from depthmarks_ros.core.fusion.real_data import SHIPPED_KITTI_MODEL
from depthmarks_ros.core.fusion.learned import load_model
from depthmarks_ros.core.fusion.uncertainty import SigmaModel
from depthmarks_ros.params.depth_fusion import DepthFusionParams


def test_fuse_kitti_defaults_are_the_preset_and_the_preset_is_a_valid_node_parameter_file():
    preset = fuse_kitti.kitti_preset()
    assert set(preset) <= set(DepthFusionParams.__dataclass_fields__)
    DepthFusionParams(**preset).validate()
    p = argparse.ArgumentParser()
    fuse_kitti.add_arguments(p)
    args = p.parse_args(['root', '-o', 'out'])
    assert (args.completion, args.sigma_model) == (preset['completion'], preset['sigma_model_file'])
    spec = DepthFusionParams(**preset)      # the preset's values, the node's defaults for the rest
    assert (args.max_depth, args.visibility_rows, args.visibility_cols) == (spec.max_depth, spec.visibility_rows,
                                                                            spec.visibility_cols)
    # the preset differs from the node's defaults on purpose (docs/depth_fusion.md): a KITTI rig
    assert preset['completion'] != DepthFusionParams().completion


def test_sigma_model_presets():
    assert resolve_sigma_model('') == resolve_sigma_model('sim') == SigmaModel()
    assert resolve_sigma_model('kitti') == load_model(SHIPPED_KITTI_MODEL) != SigmaModel()
    with pytest.raises(ValueError, match='unreadable'):
        resolve_sigma_model('kitti.json')          # not a preset name: a file, and it is missing


def test_node_with_the_preset_uses_the_kitti_model_and_rig(rclpy_context):
    from depthmarks_ros.nodes.depth_fusion import DepthFusionNode
    preset = fuse_kitti.kitti_preset()
    node = DepthFusionNode(parameter_overrides=[Parameter(k, value=v) for k, v in preset.items()])
    try:
        assert node.model == resolve_sigma_model(preset['sigma_model_file'])
        assert node.p.completion == preset['completion'] and node.lidar_frame == 'velodyne'
    finally:
        node.destroy_node()


def test_fusion_settings_defaults_are_the_node_defaults_and_from_params_keeps_every_parameter():
    """The core's FusionSettings() (used by the benchmarks and tests) and the settings that the node,
    fuse-kitti and fit-fusion build from the parameters (FusionSettings.from_params) must agree."""
    from depthmarks_ros.core.fusion.pipeline import FusionSettings
    spec = DepthFusionParams()
    assert FusionSettings.from_params(spec) == FusionSettings()
    other = DepthFusionParams(completion='scanline', max_depth=80.0, visibility_rows=7, visibility_cols=5)
    model = SigmaModel(lidar_base_pow=0.9)
    s = FusionSettings.from_params(other, model, spread=False)
    assert (s.method, s.max_depth, s.visibility_rows, s.visibility_cols, s.spread) == ('scanline', 80.0, 7, 5, False)
    assert s.model is model
