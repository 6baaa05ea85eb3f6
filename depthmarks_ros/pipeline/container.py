"""Several of the package's nodes in one process with one executor: rclpy's stand-in for a composable
node container (rclcpp's ``component_container``, which image_pipeline's launch files fill with
its nodes so that images never cross a process boundary).

    depthmarks_container stereo_depth depth_fusion --ros-args \\
        --params-file stereo.yaml --params-file fusion.yaml [-r __ns:=/rig1] \\
        [-r stereo_depth:stereo/left/image_raw:=/cam/left/image_raw ...]

The node names (full or short, as in ``nodes:=``) come before ``--ros-args``; the ROS arguments are
the process's and apply to every node in it, so each node's parameters sit under its own name in
the files (``/**/stereo_depth``) and remappings name their node (``stereo_depth:from:=to``), as
:meth:`depthmarks_ros.pipeline.graph.ProcessLaunch.params_key` and ``.remappings`` write them; the
namespace (``__ns``) is every node's. A process-wide ``__node:=`` would rename every node in it.

Which nodes share a process is decided by the node graph (``graph.PROCESS_GROUPS``; with
``compose:=people`` also ``graph.PEOPLE_GROUP``, face and body; with ``compose:=all`` every node of the launch), for the launch files and ``depthmarks run --multi-process``
alike. Everything a node process has, this one has
(:func:`depthmarks_ros.ros.node_base.run_nodes`): the malloc fix, the recorder's periods from the
environment, each node's /diagnostics, exit 0 on SIGINT/SIGTERM, a one-line start-up error. A node
that cannot be imported or built is named in one line and the others of the process run on (as in
rclcpp's component container and ``depthmarks run``); only when none starts does it exit 1.

Hand-over (issue 21): ``run_nodes`` installs a hand-over-only local tap for a process of several nodes
(:meth:`depthmarks_ros.ros.local_tap.LocalTap.hand_over_only`), so that a ``hand_over=True`` publisher
(stereo_depth's stereo/confidence) hands its messages to the other nodes' inputs (depth_fusion's)
without DDS; when, and what goes through DDS: ros/local_tap.py's docstring (docs/pipeline.md).

Publication mode: rmw_fastrtps's default (synchronous), as in a node process. rclpy's
``Publisher.publish`` holds the GIL through the whole ``rcl_publish`` (rclpy ``publisher.cpp``), so
a synchronous write into another process (serialisation, the copy of a 1.2 MB image into its
shared-memory segment, the writer-side evaluation of readers' content filters) stops the other
nodes of the process meanwhile. Asynchronous publishing (Fast DDS's own thread writes without the
GIL) was the container's default from 05:50 to 06:55 on 2026-12-07; on the quiet machine it made
fused depth later (60 s runs: median 45 vs 41 ms synchronous, single process 38) and cost more CPU
(the depth process's DDS threads 0.061 vs 0.011 cores, the whole run 1.13 vs 1.09), though it took
the write out of the stereo node's measured rest (share 0.114 vs 0.252; the 0.252 fits
a run in which stereo_depth built its recorded-only disparity every frame, fixed in
ros/recorded_topics.py): docs/pipeline.md, "Issue 21 on a quiet machine (2026-12-07 06:40-06:52 ...)". ``DEPTHMARKS_CONTAINER_PUBLICATION_MODE=ASYNCHRONOUS`` asks
for it in the container only (for that A/B, ``bench_pipeline.py`` mode ``multi-async``), unless the
environment sets ``RMW_FASTRTPS_PUBLICATION_MODE`` itself. ``=OUTBOUND`` / ``=CROSSING`` ask for
asynchronous publishing per topic, only for the writers whose readers are (also) in other processes,
derived from the node graph (:mod:`depthmarks_ros.pipeline.publication`); ``depthmarks run
--multi-process`` and the launch files set that up (a profiles file and ``AUTO``) for the shared process
(bench modes ``multi-outbound``, ``multi-crossing``); a container started by hand publishes
synchronously then.
"""
from __future__ import annotations

import os
import sys
from typing import List, Optional

from depthmarks_ros.pipeline.publication import CONTAINER_MODE_ENV, PUBLICATION_MODE_ENV, RULES

USAGE = 'usage: depthmarks_container NODE [NODE ...] [--ros-args ...]'


def node_names(argv: List[str]) -> List[str]:
    """The full node names given before ``--ros-args`` (argv without the program name); ValueError
    for an unknown or repeated one."""
    from depthmarks_ros.pipeline.graph import resolve
    words = argv[:argv.index('--ros-args')] if '--ros-args' in argv else list(argv)
    names = resolve(words)
    if not names:
        raise ValueError('no node named')
    if len(set(names)) != len(names):
        raise ValueError(f'a node named twice: {" ".join(words)}')
    return names


def main(args: Optional[List[str]] = None) -> int:
    """``args``: the command line without the program name (None = ``sys.argv[1:]``)."""
    from depthmarks_ros.pipeline.registry import load_node_class
    from depthmarks_ros.ros.node_base import EXIT_DEADLINE_S, run_nodes
    argv = list(sys.argv[1:] if args is None else args)
    try:
        names = node_names(argv)
    except ValueError as exc:
        print(f'depthmarks_container: {exc}\n{USAGE}', file=sys.stderr)
        return 2
    classes = []
    for name in names:
        cls, reason = load_node_class(name)
        if cls is None:     # named, and the others start (as depthmarks run and rclcpp's container do)
            print(f'depthmarks_container: cannot start: {reason}', file=sys.stderr)
            continue
        classes.append(cls)
    if not classes:
        return 1
    # before rclpy.init: rmw_fastrtps reads it from the environment (the module docstring says why);
    # a per-topic rule (OUTBOUND, CROSSING) is set up by its starter (pipeline/publication.py), which
    # also sets PUBLICATION_MODE_ENV (AUTO)
    asked = os.environ.get(CONTAINER_MODE_ENV, '').strip().upper()
    if asked and not os.environ.get(PUBLICATION_MODE_ENV):   # (an empty one: unset)
        if asked in RULES:
            print(f'depthmarks_container: {CONTAINER_MODE_ENV}={asked} is set up by `depthmarks run '
                  '--multi-process` or the launch files (pipeline/publication.py): publishing synchronously',
                  file=sys.stderr)
        elif asked in ('SYNCHRONOUS', 'ASYNCHRONOUS'):
            os.environ[PUBLICATION_MODE_ENV] = asked
        else:
            print(f'depthmarks_container: {CONTAINER_MODE_ENV}={asked} is not one of SYNCHRONOUS, ASYNCHRONOUS, '
                  f'{", ".join(RULES)}: publishing synchronously', file=sys.stderr)
    return run_nodes(classes, ['depthmarks_container', *argv], exit_deadline_s=EXIT_DEADLINE_S)


if __name__ == '__main__':
    sys.exit(main())
