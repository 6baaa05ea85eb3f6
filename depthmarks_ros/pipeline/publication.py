"""Per-topic publication mode of a shared process (``depth``, ``people`` or the ``pipeline`` process of
``compose:=all``, graph.COMPOSE_GROUPS; in ``pipeline`` every reader but the recorder is inside, so
``CROSSING`` is ``OUTBOUND`` there):
asynchronous for the writers whose readers are in other processes, synchronous for the hand-overs
inside the process. ROS-free (no rclpy): the runner (``depthmarks run --multi-process``) asks it for
the environment of the processes it starts.

Why: rclpy's ``Publisher.publish`` holds the GIL through the whole ``rcl_publish``, so a synchronous
write into another process (the copy into its shared-memory segment, the readers' notifications)
stops the other nodes of the process meanwhile (pipeline/container.py). Asynchronous publishing for
the whole process took that out of the stereo node's rest but also sent the in-process hand-overs
(rig -> stereo -> fusion) through Fast DDS's asynchronous thread. Here only the topics a rule picks
from the node graph (:meth:`graph.Graph.topic_readers`: which planned node reads which topic) go
asynchronous:

- ``OUTBOUND``: the process's outputs that no node of the process reads (every reader is in another
  process: a node, the recorder, a user's tool);
- ``CROSSING``: those, and the outputs that a node of another process reads even where one of the
  process's own nodes reads them too (the simulated rig's camera image and camera_info: depth_fusion
  in the process, face_landmarks and body_pose outside). Only the topics that the process's own
  nodes alone read (the stereo pair, the LiDAR sweep, stereo's depth and confidence) stay synchronous.

A node's writers are its outputs and the compressed twins of its image publishers (:func:`writer_topics`).

How (rmw_fastrtps, checked on the installed 9.3.3 and its source): ``create_publisher`` loads the Fast
DDS ``data_writer`` profile named after the fully qualified ROS topic (``/camera/image_raw``) from the
XML profiles file (``FASTDDS_DEFAULT_PROFILES_FILE``), then overrides its publish mode unless
``RMW_FASTRTPS_PUBLICATION_MODE=AUTO`` (unset behaves as ``SYNCHRONOUS``). So the process gets a
profiles file (the one it would have loaded, with one ``data_writer`` profile per picked topic, kind
``ASYNCHRONOUS``, except a topic the base file has a ``data_writer`` profile for already; written once
per content in the temp folder) and ``AUTO``; every other writer keeps
Fast DDS's default, synchronous. rmw still sets its history memory policy and turns data sharing
off (``RMW_FASTRTPS_USE_QOS_FROM_XML`` stays unset), and the ROS QoS of each publisher applies.

Asked for by ``DEPTHMARKS_CONTAINER_PUBLICATION_MODE=OUTBOUND`` or ``=CROSSING`` (``ASYNCHRONOUS``:
the whole container, pipeline/container.py); an ``RMW_FASTRTPS_PUBLICATION_MODE`` of the environment
wins (nothing changes). Figures: docs/pipeline.md, "Per-topic publication mode".
"""
from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

from depthmarks_ros.pipeline import graph as g

CONTAINER_MODE_ENV = 'DEPTHMARKS_CONTAINER_PUBLICATION_MODE'
PUBLICATION_MODE_ENV = 'RMW_FASTRTPS_PUBLICATION_MODE'
PROFILES_ENV = 'FASTDDS_DEFAULT_PROFILES_FILE'
#: the package's Fast DDS profiles in config/: one host (shared memory, loopback), and hosts on a network
LOOPBACK_PROFILE, NETWORK_PROFILE = 'fastdds_localhost.xml', 'fastdds_network.xml'
OUTBOUND, CROSSING = 'OUTBOUND', 'CROSSING'
RULES = (OUTBOUND, CROSSING)
XMLNS = 'http://www.eprosima.com'


def loopback_profile(config_dir: Optional[str] = None) -> str:
    """The path of the package's loopback profile (:data:`LOOPBACK_PROFILE`) in ``config_dir`` (by
    default the package's config folder, graph.package_config_dir; the launch files give the installed
    share's)."""
    return os.path.join(config_dir or g.package_config_dir(), LOOPBACK_PROFILE)


def asynchronous_topics(graph: g.Graph, proc: g.ProcessLaunch, rule: str,
                        config_dir: Optional[str] = None) -> Tuple[str, ...]:
    """The resolved output topics of ``proc``'s nodes (NodeSpec.outputs, and for each image output
    the names of its compressed twins, :func:`writer_topics`) that ``rule`` publishes asynchronously
    (module docstring), in the nodes' order; ValueError for an unknown rule."""
    if rule not in RULES:
        raise ValueError(f'publication rule {rule!r} is not one of {", ".join(RULES)}')
    readers = graph.topic_readers(config_dir)
    own = {n.name for n in proc.nodes}
    out = []
    for node in proc.nodes:
        for topic in writer_topics(node.spec):
            name = graph.resolve_topic(topic, node.name)
            by = set(readers.get(name, ()))
            inside, outside = by & own, by - own
            if name not in out and (not inside or (rule == CROSSING and outside)):
                out.append(name)
    return tuple(out)


def writer_topics(spec: g.NodeSpec) -> Tuple[str, ...]:
    """The relative topics ``spec``'s node writes: its outputs and the compressed twins of its image
    publishers (NodeSpec.twins; a twin is a topic of its own with its own readers: a node subscribing
    with ``image_transport: compressed``)."""
    return tuple(t for t, _ in spec.outputs) + spec.twins


def _local(tag: str) -> str:
    """An XML tag without its namespace: ``{ns}data_writer`` -> ``data_writer``."""
    return tag.rsplit('}', 1)[-1]


def base_writer_profiles(base_text: str) -> Tuple[str, ...]:
    """The ``data_writer`` profile names a Fast DDS XML profiles file already has (in any namespace:
    ``http://www.eprosima.com``, the older ``.../XMLSchemas/fastRTPS_Profiles``, or none)."""
    if not base_text.strip():
        return ()
    root = ET.fromstring(base_text)
    return tuple(w.get('profile_name') or '' for w in root.iter() if _local(w.tag) == 'data_writer')


def profiles_xml(topics: Tuple[str, ...], base_text: str = '') -> str:
    """``base_text`` (a Fast DDS XML profiles file; '' = none) with one ``data_writer`` profile per
    topic, named after it, publishing asynchronously; a topic the base already has a ``data_writer``
    profile for keeps the base's (two profiles of one name: Fast DDS refuses the second). The added
    elements take the namespace of the base's root (Fast DDS reads a file in one namespace only)."""
    if base_text.strip():
        root = ET.fromstring(base_text)
        ns = root.tag[1:].split('}', 1)[0] if root.tag.startswith('{') else ''
    else:
        ns = XMLNS
        root = ET.Element(f'{{{ns}}}dds')
    if ns:
        ET.register_namespace('', ns)    # written as the default namespace, as the base has it (no ns0:)
    q = f'{{{ns}}}' if ns else ''
    profiles = root if _local(root.tag) == 'profiles' else next(
        (c for c in root if _local(c.tag) == 'profiles'), None)
    if profiles is None:
        profiles = ET.SubElement(root, f'{q}profiles')
    named = set(base_writer_profiles(base_text))
    for topic in topics:
        if topic in named:
            continue
        writer = ET.SubElement(profiles, f'{q}data_writer', profile_name=topic)
        mode = ET.SubElement(ET.SubElement(ET.SubElement(writer, f'{q}qos'), f'{q}publishMode'), f'{q}kind')
        mode.text = 'ASYNCHRONOUS'
    return '<?xml version="1.0" encoding="UTF-8" ?>\n' + ET.tostring(root, encoding='unicode') + '\n'


def asked_rule(environ: Mapping[str, str]) -> str:
    """The per-topic rule ``environ`` asks for (:data:`RULES`), or '' (none, another mode, or an
    ``RMW_FASTRTPS_PUBLICATION_MODE`` of the environment, which wins)."""
    rule = (environ.get(CONTAINER_MODE_ENV) or '').strip().upper()
    return rule if rule in RULES and not environ.get(PUBLICATION_MODE_ENV) else ''


@dataclass(frozen=True)
class Setup:
    """What :func:`process_setup` gives a process: ``env`` (the entries to add), ``topics`` (those made
    asynchronous by the added profiles), ``notes`` (for the user: a missing base profiles file, topics
    the base already has a profile for and keeps)."""
    env: Dict[str, str] = field(default_factory=dict)
    topics: Tuple[str, ...] = ()
    notes: Tuple[str, ...] = ()


def process_setup(graph: g.Graph, proc: g.ProcessLaunch, environ: Mapping[str, str],
                  config_dir: Optional[str] = None) -> Setup:
    """The per-topic publication mode ``environ`` asks for (:data:`CONTAINER_MODE_ENV` one of
    :data:`RULES`) for ``proc``: the profiles file (``environ``'s :data:`PROFILES_ENV`, the user's or
    the package's, with the picked topics' profiles added) and ``AUTO``. Empty for a process of one
    node, for no (or another) request, or where ``environ`` sets :data:`PUBLICATION_MODE_ENV` itself."""
    rule = asked_rule(environ)
    if not proc.composed or not rule:
        return Setup()
    base = environ.get(PROFILES_ENV) or ''
    base_text, notes = '', []
    if base and os.path.isfile(base):
        try:
            with open(base, encoding='utf-8') as f:
                base_text = f.read()
            base_writer_profiles(base_text)
        except (OSError, UnicodeDecodeError, ET.ParseError) as exc:   # Fast DDS itself logs it and goes on
            return Setup(notes=(f'{PROFILES_ENV}={base} cannot be read as a profiles file ({exc}): process '
                                f'{proc.name} publishes synchronously ({CONTAINER_MODE_ENV}={rule} left out)',))
    elif base:
        notes.append(f'{PROFILES_ENV}={base} is not a file: the per-topic profiles file of process '
                     f'{proc.name} is built without it (Fast DDS would have refused to start with it)')
    picked = asynchronous_topics(graph, proc, rule, config_dir)
    named = set(base_writer_profiles(base_text))
    kept = [t for t in picked if t in named]
    if kept:
        notes.append(f'{base} has data_writer profiles of its own for {", ".join(kept)}: kept as they are '
                     f'(not made asynchronous by {CONTAINER_MODE_ENV}={rule})')
    text = profiles_xml(picked, base_text)
    return Setup({PROFILES_ENV: g.content_file('dds', 'profiles.xml', text), PUBLICATION_MODE_ENV: 'AUTO'},
                 tuple(t for t in picked if t not in named), tuple(notes))


def process_env(graph: g.Graph, proc: g.ProcessLaunch, environ: Mapping[str, str],
                config_dir: Optional[str] = None) -> Dict[str, str]:
    """The environment entries of :func:`process_setup`; its notes go to stderr (the launch files)."""
    setup = process_setup(graph, proc, environ, config_dir)
    for note in setup.notes:
        print(f'[depthmarks] {note}', file=sys.stderr)
    return setup.env
