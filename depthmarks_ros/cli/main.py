"""`depthmarks`: the package's batch commands, one sub-command a module.

Each sub-command module in depthmarks_ros/cli/ exposes ``add_arguments(parser)`` and
``run(args) -> int``; they call the same core code as the nodes. Modules are imported only
when their sub-command runs, so a missing optional dependency affects that command alone.
"""
from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    'run': ('depthmarks_ros.cli.run_pipeline', 'run the full pipeline in one process and record it'),
    'params': ('depthmarks_ros.cli.params_cmd', "a node's parameters: defaults, ranges, descriptions"),
    'sim': ('depthmarks_ros.cli.sim_render', 'render simulated-rig frames and ground truth to files'),
    'stereo': ('depthmarks_ros.cli.stereo', 'left + right images to disparity and depth files'),
    'fuse-kitti': ('depthmarks_ros.cli.fuse_kitti', 'KITTI image + velodyne + calib to dense depth and sigma'),
    'fit-fusion': ('depthmarks_ros.cli.fit_fusion', 'fit learned fusion weights on the simulated rig'),
    'mono': ('depthmarks_ros.cli.mono', 'image to relative (and metric) monocular depth'),
    'download-model': ('depthmarks_ros.cli.download_model', 'download a depth model into a folder (needs internet)'),
    'face': ('depthmarks_ros.cli.face', 'images to 68-point .pts files and a landmarks JSON'),
    'fit-face': ('depthmarks_ros.cli.fit_face', 'fit the face model, 68-point mapping and sigma models on real faces'),
    'body': ('depthmarks_ros.cli.body', 'images to COCO-format keypoint JSON'),
    'train-stereo': ('depthmarks_ros.cli.train_stereo', 'train the compact stereo refinement network (ONNX + YAML)'),
    'train-landmarks': ('depthmarks_ros.cli.train_landmarks', 'train an uncertainty-aware landmark model'),
    'eval-landmarks': ('depthmarks_ros.cli.eval_landmarks', 'evaluate a landmark model (NME, NLL, calibration)'),
    'shm-clean': ('depthmarks_ros.cli.shm_clean', "remove killed processes' Fast DDS segments from /dev/shm"),
}


def version_text() -> str:
    """'depthmarks_ros 0.1.0 (/path/to/depthmarks_ros)': which copy of the package runs."""
    import os
    from importlib.metadata import PackageNotFoundError, version
    import depthmarks_ros
    try:
        ver = version('depthmarks_ros')
    except PackageNotFoundError:
        ver = 'not installed'
    return f'depthmarks_ros {ver} ({os.path.dirname(os.path.abspath(depthmarks_ros.__file__))})'


def main(argv=None) -> int:
    from depthmarks_ros.cli.install_check import stale_install
    stale = stale_install()             # .venv/bin/depthmarks after a git pull, before setup ran again
    if stale:
        print(stale, file=sys.stderr)
    parser = argparse.ArgumentParser(prog='depthmarks', description=__doc__.splitlines()[0])
    parser.add_argument('--version', action='version', version=version_text(),
                        help='print the version and where the package is imported from, then exit')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    own_process = argv is None     # the process's entry (console script, python -m), not a caller's call
    argv = list(sys.argv[1:] if argv is None else argv)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if argv and argv[0] == name:
            try:
                mod = importlib.import_module(module)
            except ModuleNotFoundError as exc:
                parser.error(f'sub-command {name!r} is not available: {exc}')
            mod.add_arguments(p)
            p.set_defaults(_module=mod)
    args = parser.parse_args(argv)
    if not getattr(args, 'command', None):
        parser.print_help()
        return 2
    args.own_process = own_process
    return int(args._module.run(args) or 0)


if __name__ == '__main__':
    sys.exit(main())
