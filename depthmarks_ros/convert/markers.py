"""visualization_msgs helpers: points, line strips, axes (message construction only)."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _color(rgba):
    from std_msgs.msg import ColorRGBA
    return ColorRGBA(r=float(rgba[0]), g=float(rgba[1]), b=float(rgba[2]), a=float(rgba[3]))


def points_marker(header, ns: str, mid: int, points: np.ndarray, rgba, scale: float = 0.01):
    from geometry_msgs.msg import Point
    from visualization_msgs.msg import Marker
    m = Marker(header=header, ns=ns, id=mid, type=Marker.SPHERE_LIST, action=Marker.ADD)
    m.scale.x = m.scale.y = m.scale.z = scale
    m.color = _color(rgba)
    m.pose.orientation.w = 1.0
    m.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in points if np.all(np.isfinite(p))]
    return m


def lines_marker(header, ns: str, mid: int, points: np.ndarray, segments: Sequence[Sequence[int]], rgba,
                 width: float = 0.004):
    """LINE_LIST through consecutive indices of each segment (a polyline per segment)."""
    from geometry_msgs.msg import Point
    from visualization_msgs.msg import Marker
    m = Marker(header=header, ns=ns, id=mid, type=Marker.LINE_LIST, action=Marker.ADD)
    m.scale.x = width
    m.color = _color(rgba)
    m.pose.orientation.w = 1.0
    for seg in segments:
        for a, b in zip(seg[:-1], seg[1:]):
            pa, pb = points[a], points[b]
            if np.all(np.isfinite(pa)) and np.all(np.isfinite(pb)):
                m.points += [Point(x=float(pa[0]), y=float(pa[1]), z=float(pa[2])),
                             Point(x=float(pb[0]), y=float(pb[1]), z=float(pb[2]))]
    return m


def axes_markers(header, ns: str, mid: int, R: np.ndarray, t: np.ndarray, length: float = 0.1):
    """Three arrows (x red, y green, z blue) of a frame with rotation R and origin t."""
    from geometry_msgs.msg import Point
    from visualization_msgs.msg import Marker
    out = []
    for k, rgba in enumerate(((1, 0, 0, 1), (0, 1, 0, 1), (0, 0, 1, 1))):
        m = Marker(header=header, ns=ns, id=mid * 3 + k, type=Marker.ARROW, action=Marker.ADD)
        m.scale.x, m.scale.y, m.scale.z = 0.008, 0.016, 0.02
        m.color = _color(rgba)
        m.pose.orientation.w = 1.0
        end = t + R[:, k] * length
        m.points = [Point(x=float(t[0]), y=float(t[1]), z=float(t[2])),
                    Point(x=float(end[0]), y=float(end[1]), z=float(end[2]))]
        out.append(m)
    return out


def delete_all(header, ns: str = ''):
    from visualization_msgs.msg import Marker
    return Marker(header=header, ns=ns, action=Marker.DELETEALL)
