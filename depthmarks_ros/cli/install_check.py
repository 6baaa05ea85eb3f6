"""Is the installed copy of the package older than the checkout it was installed from?

scripts/setup.sh installs the package as a copy (`pip install --no-deps .`, not editable) and keeps the
content hash of what it installed (:func:`package_hash`) in ``$VENV/.depthmarks-package``; it reinstalls
when the checkout's hash differs, so `make run` and `make test` (which run setup first) always run the
checkout. ``.venv/bin/depthmarks`` run by hand after a `git pull` would run the old copy: the command then
warns (:func:`stale_install`, one line on stderr) and names `make setup`. Running the checkout itself
(`python -m depthmarks_ros...` from it, the tests) is never checked.

``python -m depthmarks_ros.cli.install_check [ROOT]`` prints ROOT's hash (setup.sh's, one definition).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Optional
from urllib.parse import unquote, urlparse

# what the install copies (setup.py: the package, its data files); a change to any of them reinstalls
PACKAGE_PATHS = ('depthmarks_ros', 'launch', 'config', 'resource', 'setup.py', 'setup.cfg', 'package.xml')
STAMP = '.depthmarks-package'       # in the venv (sys.prefix): package_hash of the checkout setup.sh installed


def package_hash(root: str) -> str:
    """sha256 over the relative path and content of every file of PACKAGE_PATHS under checkout ``root``
    (bytecode and __pycache__ left out)."""
    files = []
    for top in PACKAGE_PATHS:
        path = os.path.join(root, top)
        if os.path.isfile(path):
            files.append(top)
        for folder, dirs, names in os.walk(path):
            dirs[:] = [d for d in dirs if d != '__pycache__']
            files += [os.path.relpath(os.path.join(folder, n), root) for n in names if not n.endswith('.pyc')]
    h = hashlib.sha256()
    for rel in sorted(files):
        with open(os.path.join(root, rel), 'rb') as f:
            h.update(rel.encode() + b'\0' + hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def installed_from() -> Optional[str]:
    """The folder the installed distribution was installed from (pip's direct_url.json), if a local one."""
    from importlib.metadata import PackageNotFoundError, distribution
    try:
        text = distribution('depthmarks_ros').read_text('direct_url.json')
        url = json.loads(text).get('url', '') if text else ''
    except (PackageNotFoundError, ValueError, AttributeError):
        return None
    parsed = urlparse(url)
    return unquote(parsed.path) if parsed.scheme == 'file' else None


def stale_install(prefix: str = sys.prefix, package_dir: Optional[str] = None,
                  source: Optional[str] = None) -> Optional[str]:
    """A one-line warning where the running package (``package_dir``, default the imported one) is the copy
    setup.sh installed into ``prefix`` and its checkout (``source``, default :func:`installed_from`) has
    changed since; None where it runs from a checkout, was not installed by setup.sh, its checkout is gone,
    or nothing changed."""
    if package_dir is None:
        import depthmarks_ros
        package_dir = os.path.dirname(os.path.abspath(depthmarks_ros.__file__))
    if os.path.isfile(os.path.join(os.path.dirname(package_dir), 'setup.py')):
        return None                          # the checkout itself runs
    source = source if source is not None else installed_from()
    stamp = os.path.join(prefix, STAMP)
    if not source or not os.path.isdir(os.path.join(source, 'depthmarks_ros')) or not os.path.isfile(stamp):
        return None
    try:
        with open(stamp) as f:
            installed = f.read().strip()
        now = package_hash(source)
    except OSError:                          # unreadable, or a file vanished while read (a checkout being switched)
        return None
    if installed == now:
        return None
    return (f'depthmarks: the copy of depthmarks_ros installed in {prefix} is older than its checkout {source} '
            f'(changed since it was installed, e.g. by git pull): this run uses the old code; run `make setup` '
            f'(scripts/setup.sh) in {source} to reinstall it')


if __name__ == '__main__':
    print(package_hash(sys.argv[1] if len(sys.argv) > 1 else '.'))
