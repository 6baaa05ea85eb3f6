"""The installed copy older than its checkout (scripts/setup.sh installs a copy, not editable): the
content hash setup.sh reinstalls by, and the `depthmarks` command's warning when run by hand after the
checkout changed (git pull) before setup ran again (depthmarks_ros/cli/install_check.py)."""
import os
import shutil
import subprocess
import sys

from depthmarks_ros.cli import install_check
from depthmarks_ros.cli.install_check import STAMP, package_hash, stale_install

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
    # setup.sh's command prints the same hash (one definition)
    out = subprocess.run([sys.executable, '-m', 'depthmarks_ros.cli.install_check', str(src)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == package_hash(str(src)), out.stderr


def test_an_installed_copy_older_than_its_checkout_is_named_with_the_fix(tmp_path):
    src = _checkout(tmp_path / 'src')
    prefix, site = tmp_path / 'venv', tmp_path / 'venv' / 'site-packages' / 'depthmarks_ros'
    shutil.copytree(src / 'depthmarks_ros', site)
    (prefix / STAMP).write_text(package_hash(str(src)) + '\n')            # as setup.sh leaves it
    check = dict(prefix=str(prefix), package_dir=str(site), source=str(src))
    assert stale_install(**check) is None
    (src / 'depthmarks_ros' / 'cli' / 'main.py').write_text('x = 2\n')     # git pull
    said = stale_install(**check)
    assert said and str(src) in said and 'make setup' in said and 'old code' in said
    # the checkout itself running (python -m, the tests), a copy setup.sh did not install, a gone checkout
    assert stale_install(**dict(check, package_dir=str(src / 'depthmarks_ros'))) is None
    assert stale_install(**dict(check, source=str(tmp_path / 'gone'))) is None
    (prefix / STAMP).unlink()
    assert stale_install(**check) is None


def test_the_depthmarks_command_says_so_on_stderr_and_runs(monkeypatch, capsys):
    from depthmarks_ros.cli.main import main
    monkeypatch.setattr(install_check, 'stale_install', lambda: 'depthmarks: the copy ... is older')
    assert main(['params', 'face_landmarks']) == 0
    out = capsys.readouterr()
    assert out.err.startswith('depthmarks: the copy ... is older') and 'backend' in out.out
    monkeypatch.undo()
    assert main(['params', 'face_landmarks']) == 0
    assert 'is older' not in capsys.readouterr().err                       # the checkout runs: no word
