"""Is the installed copy of the package older than the checkout it was installed from?

scripts/setup.sh installs the package as a copy (`pip install --no-deps .`, not editable) and keeps a stamp
of the checkout it installed in ``$VENV/.depthmarks-package`` (:data:`STAMP`, :func:`stamp_line`: the content
hash of what the install copies, :func:`package_hash`, and a cheap signature of the same files' sizes and
mtimes, :func:`package_signature`); it reinstalls when the checkout's hash differs, so `make run` and
`make test` (which run setup first) always run the checkout. ``.venv/bin/depthmarks`` run by hand after a
`git pull` would run the old copy: the command then warns (:func:`stale_install`, one line on stderr) and
names `make setup`. It hashes only when the signature differs from the stamp's (stat calls
otherwise, before every command: 6.5-15 ms for the check in a fresh process, 28a7b25's message). Running the checkout itself (`python -m depthmarks_ros...` from it, the
tests) is never checked.

``python depthmarks_ros/cli/install_check.py [ROOT]`` prints ROOT's stamp line, ``--stamp-path PREFIX`` the
stamp's path in venv PREFIX (setup.sh's, one definition; the standard library only, run by path before the
package is installed).
"""
from __future__ import annotations

import os
import sys
from typing import List, Optional, Tuple

# what the install copies (setup.py: the package, its data files); a change to any of them reinstalls
PACKAGE_PATHS = ('depthmarks_ros', 'launch', 'config', 'resource', 'setup.py', 'setup.cfg', 'package.xml')
STAMP = '.depthmarks-package'       # in the venv (sys.prefix): stamp_line of the checkout setup.sh installed
DIST = 'depthmarks_ros'             # the distribution's name in its dist-info folder


def package_files(root: str) -> List[str]:
    """The relative paths of every file of PACKAGE_PATHS under checkout ``root``, sorted (bytecode and
    __pycache__ left out): what :func:`package_hash` and :func:`package_signature` cover."""
    files = []
    for top in PACKAGE_PATHS:
        path = os.path.join(root, top)
        if os.path.isfile(path):
            files.append(top)
        for folder, dirs, names in os.walk(path):
            dirs[:] = [d for d in dirs if d != '__pycache__']
            files += [os.path.relpath(os.path.join(folder, n), root) for n in names if not n.endswith('.pyc')]
    return sorted(files)


def package_hash(root: str) -> str:
    """sha256 over the relative path and content of every file of :func:`package_files`."""
    import hashlib
    h = hashlib.sha256()
    for rel in package_files(root):
        with open(os.path.join(root, rel), 'rb') as f:
            h.update(rel.encode() + b'\0' + hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def package_signature(root: str) -> str:
    """A cheap signature of the same files (stat only, nothing read): sha256 over each relative path, size
    and mtime (ns). Any edit, git checkout or pull of them changes it, so an unchanged signature stands for
    an unchanged hash (short of a same-size rewrite whose old mtime is put back, e.g. `cp -p`, or two same-size
    writes within one clock tick on kernels before 6.13, whose mtimes advance per tick)."""
    import hashlib
    h = hashlib.sha256()
    for rel in package_files(root):
        st = os.stat(os.path.join(root, rel))
        h.update(f'{rel}\0{st.st_size}\0{st.st_mtime_ns}\n'.encode())
    return h.hexdigest()


def stamp_line(root: str) -> str:
    """'<package_hash> <package_signature>' of checkout ``root``; the signature is taken first, so that a
    file changed while hashing leaves a signature that no longer matches (hashed again, not trusted)."""
    signature = package_signature(root)
    return f'{package_hash(root)} {signature}'


def _read_stamp(path: str) -> Tuple[str, str]:
    """(hash, signature) of a stamp file; the signature is '' in a stamp written before it had one."""
    with open(path) as f:
        digest, _, signature = f.read().strip().partition(' ')
    return digest, signature.strip()


def installed_from(package_dir: str) -> Optional[str]:
    """The folder the package installed at ``package_dir`` was installed from, if a local one: pip's
    direct_url.json in its dist-info folder beside it (read directly: importlib.metadata's search of
    sys.path took ~25 ms a command)."""
    import json
    from urllib.parse import unquote, urlparse
    site = os.path.dirname(package_dir)
    try:
        infos = [n for n in os.listdir(site) if n.startswith(DIST + '-') and n.endswith('.dist-info')]
    except OSError:
        return None
    for info in infos:
        try:
            with open(os.path.join(site, info, 'direct_url.json')) as f:
                url = json.load(f).get('url', '')
        except (OSError, ValueError, AttributeError):
            continue
        parsed = urlparse(url if isinstance(url, str) else '')
        if parsed.scheme == 'file':
            return unquote(parsed.path)
    return None


def stale_install(prefix: str = sys.prefix, package_dir: Optional[str] = None,
                  source: Optional[str] = None) -> Optional[str]:
    """A one-line warning where the running package (``package_dir``, default the imported one) is the copy
    setup.sh installed into ``prefix`` and its checkout (``source``, default :func:`installed_from`) differs
    from it; None where it runs from a checkout, was not installed by setup.sh, its checkout is gone, or
    nothing changed. Hashes the checkout only when its :func:`package_signature` differs from the stamp's;
    where the content is still the same (files touched, a branch switched back) it puts the new signature in
    the stamp (where it can write it) so that the next command need not hash."""
    if package_dir is None:
        import depthmarks_ros
        package_dir = os.path.dirname(os.path.abspath(depthmarks_ros.__file__))
    if os.path.isfile(os.path.join(os.path.dirname(package_dir), 'setup.py')):
        return None                          # the checkout itself runs
    source = source if source is not None else installed_from(package_dir)
    stamp = os.path.join(prefix, STAMP)
    if not source or not os.path.isdir(os.path.join(source, 'depthmarks_ros')) or not os.path.isfile(stamp):
        return None
    try:
        installed, signature = _read_stamp(stamp)
        now_signature = package_signature(source)
        if signature == now_signature:
            return None
        now = package_hash(source)
    except (OSError, ValueError):            # unreadable or garbled, or a file vanished while read (a checkout switched)
        return None
    if installed == now:
        tmp = f'{stamp}.{os.getpid()}'       # one a process: commands run side by side never share it
        try:                                 # the same content: remember the new signature (taken before the hash)
            with open(tmp, 'w') as f:
                f.write(f'{now} {now_signature}\n')
            os.replace(tmp, stamp)
        except OSError:                      # a read-only venv: hashed again next time
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return None
    return (f'depthmarks: the copy of depthmarks_ros installed in {prefix} differs from its checkout {source} '
            f'(changed since it was installed, e.g. by git pull or checkout): this run uses the old code; run '
            f'`make setup` (scripts/setup.sh) in {source} to reinstall it')


if __name__ == '__main__':
    if sys.argv[1:2] == ['--stamp-path']:
        print(os.path.join(sys.argv[2], STAMP))
    else:
        print(stamp_line(sys.argv[1] if len(sys.argv) > 1 else '.'))
