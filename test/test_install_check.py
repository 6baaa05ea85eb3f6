"""The installed copy older than its checkout (scripts/setup.sh installs a copy, not editable): the
content hash setup.sh reinstalls by, and the `depthmarks` command's warning when run by hand after the
checkout changed (git pull) before setup ran again, hashing only when the files' cheap signature changed
(depthmarks_ros/cli/install_check.py)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from depthmarks_ros.cli import install_check
from depthmarks_ros.cli.install_check import STAMP, installed_from, package_hash, stale_install, stamp_line

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))


def _checkout(root):
    (root / 'depthmarks_ros' / 'cli').mkdir(parents=True)
    (root / 'depthmarks_ros' / '__init__.py').write_text('')
    (root / 'depthmarks_ros' / 'cli' / 'main.py').write_text('x = 1\n')
    (root / 'config').mkdir()
    (root / 'config' / 'a.yaml').write_text('a: 1\n')
    (root / 'setup.py').write_text('')
    (root / 'notes.txt').write_text('not installed')
    return root


def test_package_hash_follows_what_the_install_copies_not_bytecode(tmp_path):
    src = _checkout(tmp_path / 'src')
    first = package_hash(str(src))
    (src / 'depthmarks_ros' / '__pycache__').mkdir()
    (src / 'depthmarks_ros' / '__pycache__' / 'main.cpython-311.pyc').write_bytes(b'\0')
    (src / 'notes.txt').write_text('changed, not installed')
    assert package_hash(str(src)) == first
    (src / 'config' / 'a.yaml').write_text('a: 2\n')
    assert package_hash(str(src)) != first
    (src / 'config' / 'a.yaml').write_text('a: 1\n')
    (src / 'config' / 'a.yaml').rename(src / 'config' / 'b.yaml')          # a renamed file too
    assert package_hash(str(src)) != first
    # setup.sh's command: the script run by path (the standard library only: no cwd on sys.path, no installed
    # copy needed) prints the same hash and the stamp's path (one definition of both)
    script = os.path.join(ROOT, 'depthmarks_ros', 'cli', 'install_check.py')
    env = dict(os.environ, PYTHONSAFEPATH='1', PYTHONPATH='')
    out = subprocess.run([sys.executable, script, str(src)], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.split() == stamp_line(str(src)).split(), out.stderr
    assert out.stdout.split()[0] == package_hash(str(src))
    out = subprocess.run([sys.executable, script, '--stamp-path', str(tmp_path / 'venv')], cwd=str(tmp_path),
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == str(tmp_path / 'venv' / STAMP), out.stderr
    with open(os.path.join(ROOT, 'scripts', 'setup.sh')) as f:
        assert STAMP not in f.read()                        # setup.sh asks the script for the name


def test_an_installed_copy_older_than_its_checkout_is_named_with_the_fix(tmp_path):
    src = _checkout(tmp_path / 'src')
    prefix, site = tmp_path / 'venv', tmp_path / 'venv' / 'site-packages' / 'depthmarks_ros'
    shutil.copytree(src / 'depthmarks_ros', site)
    (prefix / STAMP).write_text(stamp_line(str(src)) + '\n')              # as setup.sh leaves it
    check = dict(prefix=str(prefix), package_dir=str(site), source=str(src))
    assert stale_install(**check) is None
    main_py = src / 'depthmarks_ros' / 'cli' / 'main.py'
    main_py.write_text('x = 2\n')                                             # git pull
    st = main_py.stat()      # same size; a kernel before 6.13 may give the same mtime within one clock tick
    os.utime(main_py, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    said = stale_install(**check)
    assert said and str(src) in said and 'differs from' in said and 'make setup' in said and 'old code' in said
    # the checkout itself running (python -m, the tests), a copy setup.sh did not install, a gone checkout
    assert stale_install(**dict(check, package_dir=str(src / 'depthmarks_ros'))) is None
    assert stale_install(**dict(check, source=str(tmp_path / 'gone'))) is None
    (prefix / STAMP).unlink()
    assert stale_install(**check) is None


def test_the_checkout_is_hashed_only_when_its_files_signature_changed(tmp_path, monkeypatch):
    src = _checkout(tmp_path / 'src')
    prefix, site = tmp_path / 'venv', tmp_path / 'venv' / 'site-packages' / 'depthmarks_ros'
    shutil.copytree(src / 'depthmarks_ros', site)
    (prefix / STAMP).write_text(stamp_line(str(src)) + '\n')
    check = dict(prefix=str(prefix), package_dir=str(site), source=str(src))
    hashed = []
    real_hash = install_check.package_hash
    monkeypatch.setattr(install_check, 'package_hash', lambda root: hashed.append(root) or real_hash(root))
    assert stale_install(**check) is None and hashed == []               # nothing touched: stat calls only
    main_py = src / 'depthmarks_ros' / 'cli' / 'main.py'
    st = main_py.stat()
    os.utime(main_py, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))       # touched, the same content
    assert stale_install(**check) is None and len(hashed) == 1
    assert stale_install(**check) is None and len(hashed) == 1           # its new signature kept in the stamp
    assert (prefix / STAMP).read_text().split() == [real_hash(str(src)), install_check.package_signature(str(src))]
    assert sorted(p.name for p in prefix.iterdir()) == sorted([STAMP, 'site-packages'])   # no temporary left
    (prefix / STAMP).write_text(real_hash(str(src)) + '\n')               # a stamp from before the signature
    assert stale_install(**check) is None and len(hashed) == 2
    main_py.write_text('x = 3\n')
    assert stale_install(**check) and len(hashed) == 3
    assert stale_install(**check) and len(hashed) == 4                   # still different: hashed each time


def _site(tmp_path, direct_url):
    site = tmp_path / 'site-packages'
    (site / 'depthmarks_ros').mkdir(parents=True)
    (site / 'depthmarks_ros_extra-1.0.dist-info').mkdir()               # another distribution's
    (site / 'depthmarks_ros_extra-1.0.dist-info' / 'direct_url.json').write_text('{"url": "file:///elsewhere"}')
    info = site / 'depthmarks_ros-0.1.0.dist-info'
    info.mkdir()
    if direct_url is not None:
        (info / 'direct_url.json').write_text(direct_url)
    return str(site / 'depthmarks_ros')


@pytest.mark.parametrize('direct_url, source', [
    (json.dumps({'url': 'file:///work/my%20checkout', 'dir_info': {}}), '/work/my checkout'),   # pip install .
    (json.dumps({'url': 'https://example.org/depthmarks_ros-0.1.0.tar.gz'}), None),            # not a folder
    (None, None),                                                      # installed from a wheel or an index
    ('{not json', None),
    (json.dumps({'url': 3}), None),
])
def test_installed_from_reads_pips_direct_url_beside_the_installed_package(tmp_path, direct_url, source):
    assert installed_from(_site(tmp_path, direct_url)) == source


def test_installed_from_without_a_dist_info_is_none(tmp_path):
    (tmp_path / 'depthmarks_ros').mkdir()
    assert installed_from(str(tmp_path / 'depthmarks_ros')) is None
    assert installed_from(str(tmp_path / 'gone' / 'depthmarks_ros')) is None


def test_the_depthmarks_command_says_so_on_stderr_and_runs(monkeypatch, capsys):
    from depthmarks_ros.cli.main import main
    monkeypatch.setattr(install_check, 'stale_install', lambda: 'depthmarks: the copy ... is older')
    assert main(['params', 'face_landmarks']) == 0
    out = capsys.readouterr()
    assert out.err.startswith('depthmarks: the copy ... is older') and 'backend' in out.out
    monkeypatch.undo()
    assert main(['params', 'face_landmarks']) == 0
    assert 'is older' not in capsys.readouterr().err                       # the checkout runs: no word
