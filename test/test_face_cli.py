"""Face landmarks, batch commands: `depthmarks face` writes .pts and JSON; `depthmarks fit-face`
recovers a known 3D face from an AFLW2000-3D-style folder, fit split only."""
import argparse
import json
import shlex
from pathlib import Path

import cv2
import numpy as np
import pytest

from depthmarks_ros.core.face.head_pose import face_model_68, rotation_from_angles
from depthmarks_ros.core.pts_io import read_pts, write_pts


def test_face_command_writes_pts_and_json(tmp_path, face_image):
    from depthmarks_ros.cli.main import main
    cv2.imwrite(str(tmp_path / 'astro.png'), cv2.cvtColor(face_image, cv2.COLOR_RGB2BGR))
    assert main(['face', str(tmp_path / 'astro.png'), '-o', str(tmp_path / 'out')]) == 0
    pts = read_pts(str(tmp_path / 'out' / 'astro.pts'))
    report = json.loads((tmp_path / 'out' / 'landmarks.json').read_text())
    face = report['images']['astro.png']['faces'][0]
    assert pts.shape == (68, 2) and np.allclose(pts, face['landmarks68'], atol=1e-3)
    assert len(face['sigma68']) == 68 and 'yaw_deg' in face['head_pose']
    write_pts(str(tmp_path / 'x.pts'), pts)
    assert np.allclose(read_pts(str(tmp_path / 'x.pts')), pts, atol=1e-3)


def _aflw_folder(tmp_path):
    """AFLW2000-3D-style .mat files (and blank images) under tmp_path/faces/aflw2000_3d made from the 3D mean
    face posed by random angles (their convention: x, y px, z towards the viewer, Pose_Para = pitch,
    yaw, roll in radians); report-split stems hold noise. Returns the stems."""
    from scipy.io import savemat
    from depthmarks_ros.core.face.datasets import is_report
    truth = face_model_68()
    rng = np.random.default_rng(3)
    faces = aflw = tmp_path / 'faces' / 'aflw2000_3d'
    aflw.mkdir(parents=True)
    stems = [f'image{i:05d}' for i in range(12)]
    for stem in stems:
        yaw, pitch, roll = rng.uniform(-60, 60), rng.uniform(-30, 30), rng.uniform(-20, 20)
        pts = truth @ rotation_from_angles(yaw, pitch, roll).T * 2000.0 + [225, 225, 0]
        pts[:, 2] *= -1                                            # AFLW's z points towards the viewer
        if is_report(stem):
            pts = rng.normal(0, 50, pts.shape)                     # report split: must not be read
        savemat(str(faces / f'{stem}.mat'), {'pt3d_68': pts.T, 'Pose_Para': np.radians([[pitch, yaw, roll, 0, 0, 0, 1]])})
        cv2.imwrite(str(faces / f'{stem}.jpg'), np.zeros((8, 8, 3), np.uint8))
    return stems


def test_fit_face_recovers_a_known_3d_face_from_an_aflw_style_folder(tmp_path):
    """From AFLW2000-3D-style files of a known face posed by known angles fit-face un-rotates them back
    to the face (so the convention and the shipped model's face_image agree), fit split only; the
    file records the command that made it."""
    from depthmarks_ros.cli.main import main
    from depthmarks_ros.core.face.datasets import is_report
    stems = _aflw_folder(tmp_path)
    truth = face_model_68()
    out = tmp_path / 'out'
    assert main(['fit-face', '--data', str(tmp_path), '-o', str(out), '--parts', 'model']) == 0
    got = np.load(out / 'face_model_68.npy')
    scale = np.linalg.norm(truth[45] - truth[36]) / np.linalg.norm(got[45] - got[36])
    np.testing.assert_allclose(got * scale, truth - truth.mean(0), atol=1e-6)
    meta = json.loads((out / 'face_model_68.json').read_text())
    assert meta['faces'] == sum(not is_report(s) for s in stems) and 'sha1' in meta['split_rule']
    assert meta['command'] == shlex.join(['depthmarks', 'fit-face', '--data', str(tmp_path), '-o', str(out),
                                          '--parts', 'model'])
    fresh = tmp_path / 'fresh'
    assert main(['fit-face', '--data', str(tmp_path / 'nothing'), '-o', str(fresh), '--parts', 'model']) == 1
    assert not fresh.exists()                            # --data checked before the folder is seeded
    assert main(['fit-face', '--data', str(tmp_path), '-o', str(out), '--parts', 'modle']) == 2


def test_fit_face_writes_into_a_required_output_folder_that_starts_from_the_shipped_artefacts(tmp_path, capsys):
    """fit-face has no default output (it had written into the installed package): -o is required, as
    for every fit and train command; the folder starts from the shipped face artefacts (those a fit
    builds on), a file already there is kept, the part run replaces its own, the package is untouched."""
    from depthmarks_ros.cli.main import main
    from depthmarks_ros.core.face.pipeline import DATA_DIR
    _aflw_folder(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(['fit-face', '--data', str(tmp_path), '--parts', 'model'])
    assert exc.value.code == 2 and '--output' in capsys.readouterr().err
    shipped = {p.name: p.read_bytes() for p in Path(DATA_DIR).glob('face_*')}
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'face_visibility.json').write_text('mine')
    assert main(['fit-face', '--data', str(tmp_path), '-o', str(out), '--parts', 'model']) == 0
    assert {p.name: p.read_bytes() for p in Path(DATA_DIR).glob('face_*')} == shipped
    assert {p.name for p in out.iterdir()} == set(shipped)
    assert (out / 'face_visibility.json').read_text() == 'mine'
    assert (out / 'face_model_68.npy').read_bytes() != shipped['face_model_68.npy']
    assert all((out / n).read_bytes() == b for n, b in shipped.items()
               if n not in ('face_visibility.json', 'face_model_68.npy', 'face_model_68.json'))


def _edit_json(path, edit):
    d = json.loads(path.read_text())
    edit(d)
    path.write_text(json.dumps(d))


def _edit_npz(path, key, edit):
    z = dict(np.load(path))
    z[key] = edit(z[key])
    np.savez(path, **z)


# a change to each fitted artefact the hybrid reads for a frontal face the mesh follows (face_sigma_dlib.json:
# its dlib-only faces; face_profile_68.dat: turned faces), and the output field it must move
_ARTEFACT_EDITS = {
    'face_model_68.npy': (lambda p: np.save(p, np.load(p) * 1.5), 'tvec_m'),          # 3D mean face: distance
    'face_fit.json': (lambda p: _edit_json(p, lambda d: d['head_pose'].update(angle_scales={
        k: [3 * v for v in s] for k, s in d['head_pose']['angle_scales'].items()})), 'covariance_rvec_tvec'),
    'face_mesh_to_68.npz': (lambda p: _edit_npz(p, 'y_mean', lambda y: y + 3.0), 'landmarks68'),
    'face_hybrid.json': (lambda p: _edit_json(p, lambda d: d.update(
        weights=[[1.0 - w for w in row] for row in d['weights']])), 'landmarks68'),
    'face_sigma_hybrid.json': (lambda p: _edit_json(p, lambda d: d.update(scale=3 * d['scale'])), 'sigma68'),
    'face_visibility.json': (lambda p: _edit_json(p, lambda d: d.update(
        b=[[b[0] - 3.0] + b[1:] for b in d['b']])), 'visibility68'),
}


def _face_entry(main, img, out, fitted):
    args = ['face', str(img), '-o', str(out), '--no-detector-all-views', '--no-detector-mmod']
    assert main(args + (['--fitted-data', str(fitted)] if fitted else [])) == 0
    entry = json.loads((out / 'landmarks.json').read_text())['images'][img.name]['faces'][0]
    return {**entry, **entry['head_pose']}


def test_face_reads_the_fitted_artefacts_of_the_folder_fitted_data_names(tmp_path, face_image, capsys, monkeypatch):
    """`depthmarks face --fitted-data DIR` (the node's fitted_data) reads each artefact of DIR, the 3D mean
    face included, not the shipped ones: a changed artefact there moves its output (a broken face_fit.json
    is named); a folder that does not exist, or an empty one (it ran without any fitted artefact), is a
    clear message naming what is missing; ~ is the home folder."""
    from depthmarks_ros.cli.fit_face import seed_output
    from depthmarks_ros.cli.main import main
    img = tmp_path / 'astro.png'
    cv2.imwrite(str(img), cv2.cvtColor(face_image, cv2.COLOR_RGB2BGR))
    assert main(['face', str(img), '-o', str(tmp_path / 'o'), '--fitted-data', str(tmp_path / 'missing')]) == 2
    assert 'missing' in capsys.readouterr().out
    (tmp_path / 'empty').mkdir()
    assert main(['face', str(img), '-o', str(tmp_path / 'o'), '--fitted-data', str(tmp_path / 'empty')]) == 2
    said = capsys.readouterr().out
    assert all(n in said for n in ('face_fit.json', 'face_model_68.npy', 'face_sigma_hybrid.json'))
    monkeypatch.setenv('HOME', str(tmp_path))
    fitted = tmp_path / 'fitted'
    seed_output(str(fitted))
    base = _face_entry(main, img, tmp_path / 'o', '~/fitted')
    assert base == _face_entry(main, img, tmp_path / 'o', '')            # the copies: the shipped output
    for name, (edit, field) in _ARTEFACT_EDITS.items():
        kept = (fitted / name).read_bytes()
        edit(fitted / name)
        got = _face_entry(main, img, tmp_path / 'o', fitted)
        assert not np.allclose(got[field], base[field]), name
        (fitted / name).write_bytes(kept)
    (fitted / 'face_fit.json').write_text('{broken')
    assert main(['face', str(img), '-o', str(tmp_path / 'o'), '--fitted-data', str(fitted)]) == 2
    assert str(fitted / 'face_fit.json') in capsys.readouterr().out
    (fitted / 'face_model_68.npy').write_bytes(b'')          # an empty 3D mean face: a message, no traceback
    assert main(['face', str(img), '-o', str(tmp_path / 'o'), '--fitted-data', str(fitted)]) == 2
    assert str(fitted / 'face_model_68.npy') in capsys.readouterr().out


def test_fitted_data_requires_only_what_the_detector_and_uncertainty_read(tmp_path, face_image, capsys):
    """fitted_data asks for the files this pipeline reads: a dlib folder fitted for one detector (its
    sigma model only) runs with that detector and stops, naming the missing file and the detector, with
    another; without uncertainty no sigma model or visibility file is asked for."""
    from depthmarks_ros.cli.fit_face import seed_output
    from depthmarks_ros.cli.main import main
    from depthmarks_ros.core.face.backends import BackendError
    from depthmarks_ros.core.face.pipeline import fitted_data_dir
    fitted = tmp_path / 'fitted'
    seed_output(str(fitted))
    for name in ('face_sigma_dlib.json', 'face_sigma_dlib_mmod.json'):
        (fitted / name).unlink()
    assert fitted_data_dir(str(fitted), 'dlib', 'hog') == str(fitted)
    with pytest.raises(BackendError, match=r'lacks face_sigma_dlib_mmod.json \(the dlib \(detector mmod\)'):
        fitted_data_dir(str(fitted), 'dlib', 'mmod')
    with pytest.raises(BackendError, match='lacks face_sigma_dlib.json '):
        fitted_data_dir(str(fitted), 'hybrid')
    (fitted / 'face_visibility.json').unlink()
    for backend in ('dlib', 'hybrid'):
        assert fitted_data_dir(str(fitted), backend, 'mmod', uncertainty=False) == str(fitted)
    img = tmp_path / 'astro.png'
    cv2.imwrite(str(img), cv2.cvtColor(face_image, cv2.COLOR_RGB2BGR))
    args = ['face', str(img), '-o', str(tmp_path / 'o'), '--fitted-data', str(fitted), '--backend', 'dlib',
            '--no-detector-all-views', '--no-detector-mmod']
    assert main(args + ['--dlib-detector', 'mmod']) == 2
    assert 'face_sigma_dlib_mmod.json' in capsys.readouterr().out
    assert main(args + ['--dlib-detector', 'hog', '--no-uncertainty']) == 0


def test_landmark_convention_3d_reads_its_own_files_and_2d_is_unchanged(tmp_path, face_image, capsys):
    """`--landmark-convention 3d` (the node's landmark_convention) reads the convention's own files (map,
    blend, sigma model: face_*_3d.*) from the fitted folder, the shared ones as '2d' does; '2d' (the default)
    ignores them, its output bit-identical to a folder without them; a '3d' file missing is a refusal naming
    it (never the '2d' file in its place); another backend with '3d' is refused with the reason."""
    from depthmarks_ros.cli.fit_face import seed_output
    from depthmarks_ros.cli.main import main
    from depthmarks_ros.core.face.convention import OWN_FILES, artefact_name
    from depthmarks_ros.params.face_landmarks import FaceLandmarksParams
    assert FaceLandmarksParams().landmark_convention == '2d'
    assert FaceLandmarksParams(landmark_convention='3d').problem() is None
    assert 'hybrid backend only' in FaceLandmarksParams(landmark_convention='3d', backend='dlib').problem()
    assert 'landmark_convention' in FaceLandmarksParams(landmark_convention='3D').problem()
    img = tmp_path / 'astro.png'
    cv2.imwrite(str(img), cv2.cvtColor(face_image, cv2.COLOR_RGB2BGR))
    fitted = tmp_path / 'fitted'
    seed_output(str(fitted))
    assert sorted(artefact_name(n, '3d') for n in OWN_FILES) == [
        'face_hybrid_3d.json', 'face_mesh_to_68_3d.npz', 'face_sigma_hybrid_3d.json']
    for name in OWN_FILES:            # the base: a folder without the 3d files
        (fitted / artefact_name(name, '3d')).unlink()
    base = _face_entry(main, img, tmp_path / 'o', fitted)
    for name in OWN_FILES:            # the 3d copies, each edited as _ARTEFACT_EDITS does
        (fitted / artefact_name(name, '3d')).write_bytes((fitted / name).read_bytes())
        _ARTEFACT_EDITS[name][0](fitted / artefact_name(name, '3d'))
    assert _face_entry(main, img, tmp_path / 'o', fitted) == base       # '2d' (default): the 3d files unread
    args = ['face', str(img), '-o', str(tmp_path / 'o3'), '--no-detector-all-views', '--no-detector-mmod',
            '--fitted-data', str(fitted), '--landmark-convention']
    assert main(args + ['2d']) == 0
    entry = json.loads((tmp_path / 'o3' / 'landmarks.json').read_text())['images'][img.name]['faces'][0]
    assert entry == {k: v for k, v in base.items() if k in entry}
    assert 'landmark_convention' not in json.loads((tmp_path / 'o3' / 'landmarks.json').read_text())   # '2d' as before
    assert main(args + ['3d']) == 0
    report = json.loads((tmp_path / 'o3' / 'landmarks.json').read_text())
    assert report['landmark_convention'] == '3d'
    entry = report['images'][img.name]['faces'][0]
    assert not np.allclose(entry['landmarks68'], base['landmarks68'])
    assert not np.allclose(entry['sigma68'], base['sigma68'])
    fit = json.loads((fitted / 'face_fit.json').read_text())      # its own head-pose factors, or a refusal
    fit['head_pose']['angle_scales'].pop('hybrid_3d')
    (fitted / 'face_fit.json').write_text(json.dumps(fit))
    capsys.readouterr()
    assert main(args + ['3d']) == 2
    said = capsys.readouterr().out
    assert "angle factors 'hybrid_3d'" in said and '--parts pose-hybrid --cache' in said
    assert _face_entry(main, img, tmp_path / 'o', fitted) == base        # '2d' does not need them
    (fitted / 'face_hybrid_3d.json').unlink()
    assert main(args + ['3d']) == 2
    said = capsys.readouterr().out
    assert 'face_hybrid_3d.json' in said and 'face_mesh_to_68_3d.npz' not in said.split('lacks')[1].split('(')[0]
    assert main(args + ['3d', '--backend', 'mediapipe']) == 2
    assert "fitted for the hybrid backend only, not 'mediapipe'" in capsys.readouterr().out
    with pytest.raises(SystemExit):          # argparse: not one of the choices
        main(['face', str(img), '-o', str(tmp_path / 'o3'), '--landmark-convention', '3x'])


def test_fit_face_convention_3d_fits_its_own_parts_on_aflw_alone(tmp_path, capsys):
    """`fit-face --convention 3d` takes AFLW2000-3D's fit split alone and only the parts with files of their
    own per convention (a shared part is refused before anything is written)."""
    from depthmarks_ros.cli.fit_face import _samples
    from depthmarks_ros.cli.main import main
    data = tmp_path / 'data'
    _aflw_folder(data)
    w300 = data / 'faces' / '300w_lfpw_test'
    w300.mkdir(parents=True)
    assert main(['fit-face', '--data', str(data), '-o', str(tmp_path / 'o'), '--convention', '3d',
                 '--parts', 'mapping,pose,pose-hybrid']) == 2
    assert capsys.readouterr().err.endswith('; shared, not per convention: pose\n')   # pose-hybrid is its own
    assert not (tmp_path / 'o').exists()
    aflw, w = _samples(str(data), convention='3d')
    assert aflw and all(s.dataset == 'aflw2000_3d' for s in aflw) and w == []


def test_fit_face_convention_3d_profile_needs_the_shared_predictor_before_anything_runs(tmp_path, monkeypatch,
                                                                                       capsys):
    """`--convention 3d --parts profile` fits its weights for the shared turned-face predictor: where neither
    -o nor the shipped set it is seeded from holds face_profile_68.dat, the run is refused before -o is made
    (no predictor trained); -o's own serves, and '2d' (whose profile part trains it) needs none."""
    from depthmarks_ros.cli import fit_face
    from depthmarks_ros.cli.main import main
    from depthmarks_ros.core.face import pipeline
    data, out = tmp_path / 'data', tmp_path / 'out'
    _aflw_folder(data)
    args = argparse.Namespace(data=str(data), output=str(out), cache='', convention='3d')
    assert fit_face._missing_input(args, ['mapping', 'hybrid', 'profile']) == ''     # the shipped one seeds -o
    monkeypatch.setattr(pipeline, 'DATA_DIR', str(tmp_path / 'package'))             # a package without it
    assert main(['fit-face', '--data', str(data), '-o', str(out), '--convention', '3d', '--parts',
                 'mapping,hybrid,profile']) == 1
    said = capsys.readouterr().err
    assert 'face_profile_68.dat missing' in said and "the '2d' profile part trains" in said and not out.exists()
    assert fit_face._missing_input(args, ['mapping', 'hybrid']) == ''
    assert fit_face._missing_input(argparse.Namespace(**{**vars(args), 'convention': '2d'}), ['profile']) == ''
    out.mkdir()
    (out / 'face_profile_68.dat').write_bytes(b'a predictor')
    assert fit_face._missing_input(args, ['profile']) == ''


def test_fit_face_convention_3d_hands_the_fit_no_300w_faces(tmp_path, monkeypatch):
    """`fit-face --convention 3d` passes AFLW2000-3D's fit faces and an empty 300-W list to the landmark
    parts (the convention's sets), with the convention; '2d' passes both sets."""
    from depthmarks_ros.cli.main import main
    from depthmarks_ros.core.face import model_fit
    from depthmarks_ros.core.pts_io import write_pts
    data = tmp_path / 'data'
    _aflw_folder(data)
    w300 = data / 'faces' / '300w_lfpw_test'
    w300.mkdir(parents=True)
    for i in range(12):
        write_pts(str(w300 / f'face{i:03d}.pts'), face_model_68()[:, :2] * 1000 + 200)
        cv2.imwrite(str(w300 / f'face{i:03d}.png'), np.zeros((8, 8, 3), np.uint8))
    got = []

    def capture(aflw, w300, output, parts, command, cache='', convention='2d'):
        got.append((len(aflw), len(w300), convention))
        yield 'captured'
    monkeypatch.setattr(model_fit, 'fit_landmark_artefacts', capture)
    for conv in ('2d', '3d'):
        assert main(['fit-face', '--data', str(data), '-o', str(tmp_path / conv), '--parts', 'mapping',
                     '--convention', conv]) == 0
    (n2, w2, c2), (n3, w3, c3) = got
    assert n2 == n3 > 0 and w2 > 0 and w3 == 0 and (c2, c3) == ('2d', '3d')


def test_fit_face_convention_3d_pose_hybrid_fits_its_own_factors_from_its_records(tmp_path, monkeypatch, capsys):
    """`--convention 3d --parts pose-hybrid` fits face_fit.json's 'hybrid_3d' angle factors from the
    convention's records (sigma_hybrid_3d.npz with pose points) alone: without --cache it is refused
    before -o is made; records without pose points, or a missing sigma model, are a clear refusal naming
    the file (no backend run); a fit adds 'hybrid_3d' and its record (angle_scales_made_by_path,
    convention_runs) and leaves every '2d' key and the file's own record as they were; its records of
    another mean face are refused naming the convention's own part to rewrite them."""
    from depthmarks_ros.cli.main import main
    from depthmarks_ros.core.face import model_fit, pipeline
    from depthmarks_ros.core.face.sigma_fit import StaleRecordsError, fit_and_save, save_made_records
    from depthmarks_ros.testing.face_records import synthetic_sigma_records
    data = tmp_path / 'data'
    stems = _aflw_folder(data)
    out, cache = tmp_path / 'out', tmp_path / 'cache'
    argv = ['fit-face', '--data', str(data), '-o', str(out), '--convention', '3d', '--parts', 'pose-hybrid']
    assert main(argv) == 1
    assert '--cache' in capsys.readouterr().err and not out.exists()     # a run that cannot start copies nothing
    assert main(argv + ['--cache', str(cache)]) == 1
    assert 'sigma_hybrid_3d.npz' in capsys.readouterr().err and not out.exists()

    def no_backend(*a, **k):
        raise AssertionError('a backend ran for the 3d factors')
    monkeypatch.setattr(pipeline, 'FaceLandmarker', no_backend)
    rec, _ = synthetic_sigma_records(np.random.default_rng(0), faces=(20, 10))
    rec['stem'] = np.array([stems[i % len(stems)] for i in range(30)])
    from depthmarks_ros.cli.fit_face import seed_output
    seed_output(str(out))
    save_made_records(str(cache / 'sigma_hybrid_3d.npz'), rec, {'command': 'test'}, str(out))    # no P
    assert main(argv + ['--cache', str(cache)]) == 1
    assert 'no pose points (P)' in capsys.readouterr().err
    rec['P'] = rec['L']
    list(fit_and_save('hybrid_3d', rec, str(out), {'command': 'test'}, str(cache), cross_check=False, steps=2))
    (out / 'face_sigma_hybrid_3d.json').rename(out / 'moved.json')
    with pytest.raises(FileNotFoundError, match='face_sigma_hybrid_3d.json missing'):     # the core's own check
        list(model_fit._fit_pose_scales([], str(out), 'test', {}, ['hybrid_3d'], lambda: None, str(cache)))
    (out / 'moved.json').rename(out / 'face_sigma_hybrid_3d.json')
    before = json.loads((out / 'face_fit.json').read_text())
    before['head_pose']['angle_scales'].pop('hybrid_3d', None)
    (out / 'face_fit.json').write_text(json.dumps(before))
    rng = np.random.default_rng(1)
    monkeypatch.setattr(model_fit, 'pose_z_records', lambda *a, **k: (np.abs(rng.normal(0, 1, (40, 3))),
                                                                       rng.uniform(-60, 60, 40)))
    assert main(argv + ['--cache', str(cache)]) == 0
    after = json.loads((out / 'face_fit.json').read_text())
    hp, hp0 = after['head_pose'], before['head_pose']
    assert 'hybrid_3d' in hp['angle_scales']
    assert {k: v for k, v in hp['angle_scales'].items() if k != 'hybrid_3d'} == hp0['angle_scales']
    assert hp['angle_scales_made_by'] == hp0['angle_scales_made_by']
    assert after['command'] == before['command']
    made = hp['angle_scales_made_by_path']['hybrid_3d']['command']
    assert '--convention 3d' in made and after['convention_runs']['3d']['command'] == made
    assert after['convention_runs']['3d']['fit_images']['300w_lfpw_test'] == 0
    np.save(out / 'face_model_68.npy', face_model_68() * [1.0, 1.0, 2.5])      # fit-face --parts model since
    with pytest.raises(StaleRecordsError) as stale:      # rewritten by the convention's own part, not sigma-hybrid
        list(model_fit._fit_pose_scales([], str(out), 'test', {}, ['hybrid_3d'], lambda: None, str(cache)))
    assert f'--convention 3d --parts profile --cache {cache}' in str(stale.value)
    assert '--parts sigma' not in str(stale.value)


def test_keypoint_path_pose_records_of_another_convention_are_refused(tmp_path, monkeypatch):
    """The keypoint path's pose records (pose_hybrid_box68.npz, shared hybrid_box68 factors) written by a
    --convention 3d run (before it stopped writing them) are refused by the '2d' pose part before any
    backend runs; a '2d' run's are read."""
    from depthmarks_ros.cli.fit_face import seed_output
    from depthmarks_ros.core.face import pipeline
    from depthmarks_ros.core.face.model_fit import BOX68_POSE_RECORDS, _fit_pose_scales, check_box68_records
    from depthmarks_ros.core.face.sigma_fit import StaleRecordsError, save_made_records
    out, cache = tmp_path / 'out', tmp_path / 'cache'
    seed_output(str(out))
    rec = {'stem': np.array(['a', 'b']), 'L': np.zeros((2, 68, 2)), 'C': np.tile(np.eye(2), (2, 68, 1, 1))}
    path = str(cache / BOX68_POSE_RECORDS)
    save_made_records(path, rec, {'command': 'depthmarks fit-face --parts profile --convention 3d'}, str(out))

    def no_backend(*a, **k):
        raise AssertionError('a backend ran before the records were refused')
    monkeypatch.setattr(pipeline, 'FaceLandmarker', no_backend)
    with pytest.raises(StaleRecordsError, match=r'--convention 3d run.* --parts profile --cache'):
        list(_fit_pose_scales([], str(out), 'test', {}, ['hybrid_box68'], lambda: None, str(cache)))
    save_made_records(path, rec, {'command': 'depthmarks fit-face --parts profile', 'convention': '2d'}, str(out))
    check_box68_records(path)


def test_fit_face_refits_the_sigma_models_from_cached_error_records(tmp_path):
    """`--parts sigma-cached --cache DIR` refits face_sigma_<backend>.json from the records alone
    (no image), recording the split rule and command; a missing cache is a message, exit 1."""
    from depthmarks_ros.cli.main import main
    from depthmarks_ros.core.face.sigma_fit import save_records
    from depthmarks_ros.core.face.sigma_model import LandmarkSigmaModel
    from depthmarks_ros.testing.face_records import synthetic_sigma_records
    rec, _ = synthetic_sigma_records(np.random.default_rng(0), faces=(30, 10))
    (tmp_path / 'cache').mkdir()
    save_records(str(tmp_path / 'cache' / 'sigma_hybrid.npz'), rec)
    out = tmp_path / 'out'
    assert main(['fit-face', '--data', str(tmp_path / 'none'), '-o', str(out), '--parts', 'sigma-cached',
                 '--cache', str(tmp_path / 'cache'), '--sigma-steps', '10', '--limit', '3']) == 0
    m = LandmarkSigmaModel.load(str(out / 'face_sigma_hybrid.json'))
    assert 'sigma-cached' in m.meta['command'] and 'sha1' in m.meta['split_rule'] and m.vis_b is not None
    assert '--limit' not in m.meta['command']            # the records are refitted whole: no limit to record
    cv = m.meta['cross_validated_shares']          # per candidate design (FIT_DESIGNS), per set
    assert len(cv) == 3 and all(set(v) == {'300w', 'aflw2000_3d'} for v in cv.values())
    chosen = ' '.join(m.features) + (' (quantile stage)' if 'pinball' in m.meta['fit_loss'] else '')
    assert chosen in cv
    from depthmarks_ros.core.face.pipeline import DATA_DIR
    assert (out / 'face_sigma_mediapipe.json').read_bytes() == (Path(DATA_DIR) / 'face_sigma_mediapipe.json').read_bytes()
    fresh = tmp_path / 'fresh'
    assert main(['fit-face', '--data', str(tmp_path), '-o', str(fresh), '--parts', 'sigma-cached',
                 '--cache', str(tmp_path / 'nothing')]) == 1
    assert not fresh.exists()                            # checked before the folder is seeded


def test_sigma_cached_refits_a_landmark_conventions_records_alone(tmp_path, capsys, monkeypatch):
    """`--convention 3d --parts sigma-cached --cache DIR` refits face_sigma_hybrid_3d.json from
    DIR/sigma_hybrid_3d.npz alone (meta: convention, command, split rule, records_made_by) and writes no
    other file; a '2d' sigma-cached run on the same cache never reads or writes the 3d records' files; a
    cache without the convention's records is refused before -o is seeded; records of another mean face
    name the convention's own part to rewrite them. (The design choice by 5-fold cross-validation is the
    previous tests'; here one design, scored on its fit faces, keeps the test to seconds.)"""
    from depthmarks_ros.cli.fit_face import seed_output
    from depthmarks_ros.cli.main import main
    from depthmarks_ros.core.face import sigma_fit
    from depthmarks_ros.core.face.sigma_fit import save_made_records
    from depthmarks_ros.core.face.sigma_model import FIT_DESIGNS, LandmarkSigmaModel
    from depthmarks_ros.testing.face_records import synthetic_sigma_records
    monkeypatch.setattr(sigma_fit, 'candidate_designs', lambda rec: FIT_DESIGNS[:1])
    monkeypatch.setattr(sigma_fit, 'cross_validate', lambda rec, steps, fs, quantile=False: sigma_fit.evaluate(
        sigma_fit.fit_sigma(rec, steps=steps, features=fs, quantile=quantile), rec))
    out, cache = tmp_path / 'out', tmp_path / 'cache'
    seed_output(str(out))
    rec2, _ = synthetic_sigma_records(np.random.default_rng(0), faces=(16, 8))
    rec3, _ = synthetic_sigma_records(np.random.default_rng(1), faces=(15,), names=('aflw2000_3d',))
    save_made_records(str(cache / 'sigma_hybrid.npz'), rec2, {'command': 'made 2d'}, str(out))
    made3 = 'depthmarks fit-face --parts profile --convention 3d'
    save_made_records(str(cache / 'sigma_hybrid_3d.npz'), rec3, {'command': made3, 'backend': 'hybrid 3d'}, str(out))
    cached = {p.name: p.read_bytes() for p in cache.iterdir()}

    def fit(convention, o=out, c=cache):
        return main(['fit-face', '--data', str(tmp_path / 'none'), '-o', str(o), '--parts', 'sigma-cached',
                     '--cache', str(c), '--sigma-steps', '5', '--convention', convention])

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert fit('3d') == 0
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {n for n in after if after[n] != before.get(n)} == {'face_sigma_hybrid_3d.json'}
    m = LandmarkSigmaModel.load(str(out / 'face_sigma_hybrid_3d.json'))
    assert m.meta['faces'] == 15 and m.meta['faces_per_set'] == {'aflw2000_3d': 15}    # the 3d records, not 2d's 24
    assert m.meta['convention'] == '3d' and m.meta['records_made_by'] == made3 and m.meta['backend'] == 'hybrid 3d'
    assert 'sigma-cached' in m.meta['command'] and '--convention 3d' in m.meta['command']
    assert 'sha1' in m.meta['split_rule']
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == cached

    before = after
    assert fit('2d') == 0                                # the 2d refit: sigma_hybrid.npz alone
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {n for n in after if after[n] != before.get(n)} == {'face_sigma_hybrid.json'}
    m = LandmarkSigmaModel.load(str(out / 'face_sigma_hybrid.json'))
    assert m.meta['faces'] == 24 and m.meta['convention'] == '2d' and '--convention' not in m.meta['command']
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == cached

    only2d, only3d = tmp_path / 'only2d', tmp_path / 'only3d'
    only2d.mkdir(), only3d.mkdir()
    (only2d / 'sigma_hybrid.npz').write_bytes(cached['sigma_hybrid.npz'])
    (only3d / 'sigma_hybrid_3d.npz').write_bytes(cached['sigma_hybrid_3d.npz'])
    capsys.readouterr()
    for convention, c in (('3d', only2d), ('2d', only3d)):      # no records of the run's convention: refused
        fresh = tmp_path / f'fresh{convention}'
        assert fit(convention, fresh, c) == 1
        assert not fresh.exists()                         # checked before the folder is seeded
    said = capsys.readouterr().err
    assert 'sigma_hybrid_3d.npz' in said and '--convention 3d --parts profile --cache' in said
    assert f'sigma_<backend>.npz records in {only3d}' in said

    np.save(out / 'face_model_68.npy', face_model_68() * [1.0, 1.0, 2.5])      # a model refit since the records
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert fit('3d') == 1
    said = capsys.readouterr().err
    assert 'sigma_hybrid_3d.npz' in said and f'--convention 3d --parts profile --cache {cache}' in said
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_cached_records_of_another_3d_mean_face_are_refused(tmp_path, capsys, monkeypatch):
    """Cached error records name the 3D mean face their pose features were computed on (a short hash of
    its values in sigma_<key>.json); after the output folder's model is refit, `--parts sigma-cached` and
    the pose part on the cache refuse them with a message naming both files (they would mix two models),
    checking every cache file before fitting or running anything: a later key's stale records leave no
    face_sigma_*.json rewritten from an earlier key's fresh ones, and no backend is run."""
    from depthmarks_ros.cli.fit_face import seed_output
    from depthmarks_ros.cli.main import main
    from depthmarks_ros.core.face import pipeline
    from depthmarks_ros.core.face.head_pose import face_model_68
    from depthmarks_ros.core.face.model_fit import _fit_pose_scales
    from depthmarks_ros.core.face.sigma_fit import StaleRecordsError, check_records_model, fit_and_save
    from depthmarks_ros.testing.face_records import synthetic_sigma_records
    rec, _ = synthetic_sigma_records(np.random.default_rng(0), faces=(20, 10))
    out, cache = tmp_path / 'out', tmp_path / 'cache'
    seed_output(str(out))
    list(fit_and_save('mediapipe', rec, str(out), {'command': 'test'}, str(cache), cross_check=False, steps=2))
    check_records_model(str(cache / 'sigma_mediapipe.npz'), str(out))          # the same model: accepted
    np.save(out / 'face_model_68.npy', face_model_68() * [1.0, 1.0, 2.5])      # fit-face --parts model since
    list(fit_and_save('hybrid', rec, str(out), {'command': 'test'}, str(cache), cross_check=False, steps=2))
    check_records_model(str(cache / 'sigma_hybrid.npz'), str(out))             # written on the new model
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(['fit-face', '--data', str(tmp_path / 'none'), '-o', str(out), '--parts', 'sigma-cached',
                 '--cache', str(cache), '--sigma-steps', '2']) == 1
    said = capsys.readouterr().err
    assert str(cache / 'sigma_mediapipe.npz') in said and str(out / 'face_model_68.npy') in said
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before       # hybrid (fresh, first) not refit

    def no_backend(*a, **k):
        raise AssertionError('a backend ran before the stale records were refused')
    monkeypatch.setattr(pipeline, 'FaceLandmarker', no_backend)
    with pytest.raises(StaleRecordsError, match='sigma_mediapipe.npz'):   # dlib (no records) would run first
        list(_fit_pose_scales([], str(out), 'test', {}, ['dlib', 'mediapipe'], lambda: None, str(cache)))
    monkeypatch.undo()
    (cache / 'sigma_hybrid.json').write_text('{not json')                # a corrupt records file: named, exit 1
    assert main(['fit-face', '--data', str(tmp_path / 'none'), '-o', str(out), '--parts', 'sigma-cached',
                 '--cache', str(cache)]) == 1
    assert 'sigma_hybrid.json: unreadable' in capsys.readouterr().err
    (cache / 'sigma_hybrid.json').unlink()
    (out / 'face_model_68.npy').write_bytes(b'')                         # a bad mean face in -o: named, exit 1
    assert main(['fit-face', '--data', str(tmp_path / 'none'), '-o', str(out), '--parts', 'sigma-cached',
                 '--cache', str(cache)]) == 1
    assert 'face_model_68.npy' in capsys.readouterr().err


def test_keypoint_path_pose_records_of_another_3d_mean_face_are_refused(tmp_path, monkeypatch):
    """The hybrid's keypoint-path pose records (pose_hybrid_box68.npz, fit-face --parts profile --cache)
    name the mean face of the run that wrote them and how they were made, as the sigma records do; after
    a model refit the pose part refuses them before any backend runs, saying which part rewrites them."""
    import json
    from depthmarks_ros.cli.fit_face import seed_output
    from depthmarks_ros.core.face import pipeline
    from depthmarks_ros.core.face.head_pose import face_model_68
    from depthmarks_ros.core.face.model_fit import BOX68_POSE_RECORDS, BOX68_RECORDS_COMPUTED, \
        BOX68_RECORDS_REDO, _fit_pose_scales
    from depthmarks_ros.core.face.sigma_fit import RECORDS_MODEL_KEY, StaleRecordsError, check_records_model, \
        load_records, save_made_records
    out, cache = tmp_path / 'out', tmp_path / 'cache'
    seed_output(str(out))
    rec = {'stem': np.array(['a', 'b']), 'L': np.zeros((2, 68, 2)), 'C': np.tile(np.eye(2), (2, 68, 1, 1))}
    path = str(cache / BOX68_POSE_RECORDS)
    save_made_records(path, rec, {'command': 'test'}, str(out))
    made = json.loads((cache / BOX68_POSE_RECORDS.replace('.npz', '.json')).read_text())
    assert made['records_made_by'] == {'command': 'test'} and made[RECORDS_MODEL_KEY]
    assert load_records(path)['L'].shape == (2, 68, 2)
    check_records_model(path, str(out), BOX68_RECORDS_COMPUTED, BOX68_RECORDS_REDO)     # the same model
    np.save(out / 'face_model_68.npy', face_model_68() * [1.0, 1.0, 2.5])      # fit-face --parts model since

    def no_backend(*a, **k):
        raise AssertionError('a backend ran before the stale records were refused')
    monkeypatch.setattr(pipeline, 'FaceLandmarker', no_backend)
    with pytest.raises(StaleRecordsError, match=r'pose_hybrid_box68.npz: its points .* --parts profile --cache'):
        list(_fit_pose_scales([], str(out), 'test', {}, ['dlib', 'hybrid_box68'], lambda: None, str(cache)))


def test_fit_face_records_the_command_it_ran_with_the_real_cache_folder(tmp_path, monkeypatch):
    """The command fit-face hands the landmark parts to record (face_fit.json's and every artefact's
    'command') is the run's own: the real --data, -o, --limit and --cache folder (no 'DIR' placeholder);
    parsed again by fit-face's options it gives the same run."""
    from depthmarks_ros.cli import fit_face
    from depthmarks_ros.cli.main import main
    from depthmarks_ros.core.face import model_fit
    _aflw_folder(tmp_path)
    got = {}

    def capture(aflw, w300, output, parts, command, cache='', convention='2d'):
        got.update(output=output, parts=parts, command=command, cache=cache)
        yield 'captured'
    monkeypatch.setattr(model_fit, 'fit_landmark_artefacts', capture)
    out, cache = tmp_path / 'my out', tmp_path / 'records'
    argv = ['--data', str(tmp_path), '-o', str(out), '--parts', 'model,box,pose', '--cache', str(cache),
            '--limit', '5', '--sigma-steps', '40']
    assert main(['fit-face'] + argv) == 0
    cmd = shlex.split(got['command'])
    assert cmd[:2] == ['depthmarks', 'fit-face'] and 'DIR' not in cmd and got['cache'] == str(cache)
    p = argparse.ArgumentParser()
    fit_face.add_arguments(p)
    ran, recorded = vars(p.parse_args(argv)), vars(p.parse_args(cmd[2:]))
    assert recorded == {**ran, 'parts': 'box,pose'}          # the model part records its own command,
    model_cmd = cmd[:cmd.index('--parts') + 1] + ['model'] + cmd[cmd.index('--parts') + 2:]
    del model_cmd[model_cmd.index('--limit'):model_cmd.index('--limit') + 2]     # without --limit (it reads all)
    assert json.loads((out / 'face_model_68.json').read_text())['command'] == shlex.join(model_cmd)


def test_the_records_redo_of_every_sigma_key_is_a_fit_face_command(tmp_path):
    """sigma_fit.records_redo (the options the stale / missing records messages tell the user to run) gives,
    for every sigma key of every convention, options `depthmarks fit-face --help` lists: its --parts are
    listed parts, its --convention a listed choice, the convention the key's own ('hybrid_3d' -> --convention
    3d, never a '2d' sigma part that would rewrite the '2d' records; 'dlib_hog' -> no --convention hog), and
    the line parses with fit-face's own parser. Keys no part writes records of are a ValueError, not a
    wrong command."""
    import os
    import re
    import subprocess
    import sys
    from depthmarks_ros.cli import fit_face
    from depthmarks_ros.core.face.convention import CONVENTIONS, DEFAULT_CONVENTION, split_key
    from depthmarks_ros.core.face.sigma_fit import records_redo, sigma_keys
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, COLUMNS='100000', PYTHONPATH=str(root))      # one line per option: nothing wrapped
    helptext = subprocess.run([sys.executable, '-m', 'depthmarks_ros.cli.main', 'fit-face', '--help'], cwd=root,
                              env=env, capture_output=True, text=True, check=True).stdout
    options = set(re.findall(r'(?<![\w-])(--[a-z][a-z-]*)', helptext))
    parts = set(re.search(r'comma-separated subset of (\S+)', helptext).group(1).split(','))
    conventions = set(re.search(r'--convention \{([^}]*)\}', helptext).group(1).split(','))
    assert {'--parts', '--cache', '--convention'} <= options and 'sigma-hybrid' in parts and '3d' in conventions
    parser = argparse.ArgumentParser()
    fit_face.add_arguments(parser)
    for convention in CONVENTIONS:
        for key in sigma_keys(convention):
            argv = shlex.split(records_redo(key).format(cache=str(tmp_path / 'cache')))
            assert {a for a in argv if a.startswith('--')} <= options, (key, argv)
            args = parser.parse_args(['--data', 'D', '-o', 'O'] + argv)
            assert set(args.parts.split(',')) <= parts and args.cache == str(tmp_path / 'cache'), (key, argv)
            assert args.convention in conventions and args.convention == split_key(key)[1], (key, argv)
            if convention != DEFAULT_CONVENTION:           # the convention's own part (not a '2d' sigma part)
                assert set(args.parts.split(',')) <= set(fit_face.CONVENTION_PARTS), (key, argv)
            else:
                assert args.parts == f'sigma-{key}', (key, argv)
    for key in ('hybrid_4d', 'dlib_3d', 'hybrid_box68', 'mediapipe_fixed'):
        with pytest.raises(ValueError):
            records_redo(key)


def test_redo_commands_in_messages_quote_their_paths(tmp_path):
    """The fit-face commands that the record checks quote can be pasted into a shell as they are: an
    output or cache folder with a space (or a quote) in its name comes out shell-quoted, and it is the
    folder the check was given."""
    import shlex
    from depthmarks_ros.core.face.sigma_fit import cached_records, fit_face_command, records_redo
    out, cache = tmp_path / 'my out', tmp_path / "rec's cache"
    cache.mkdir()
    cmd = fit_face_command(str(out), records_redo('hybrid_3d'), str(cache))
    words = shlex.split(cmd)
    assert words[words.index('-o') + 1] == str(out) and words[words.index('--cache') + 1] == str(cache)
    assert words[:2] == ['depthmarks', 'fit-face'] and '--convention' in words
    with pytest.raises(FileNotFoundError) as none_there:      # an empty cache folder: the command names it
        cached_records(str(cache), str(out), convention='3d')
    quoted = str(none_there.value).split('write them with ', 1)[1]
    words = shlex.split(quoted)
    assert words[words.index('--cache') + 1] == str(cache) and words[words.index('-o') + 1] == str(out)
    with pytest.raises(FileNotFoundError) as no_cache:        # no cache folder: DIR left for the user
        cached_records(str(tmp_path / 'nowhere'), str(out))
    words = shlex.split(str(no_cache.value).split('run ', 1)[1].split(' first')[0].split(' (and')[0])
    assert words[words.index('-o') + 1] == str(out) and words[words.index('--cache') + 1] == 'DIR'
