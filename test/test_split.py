"""core/split.py: the one real-data split rule that every dataset loader, fit command and benchmark uses."""
import hashlib

import pytest

from depthmarks_ros.core import split as S


def test_rule_matches_the_documented_formula():
    stems = [f'{i:06d}' for i in range(60)] + ['image00002', 'indoor_001']
    for stem in stems:
        assert S.is_report(stem) == (int(hashlib.sha1(stem.encode()).hexdigest(), 16) % 5 == 0)
    # both parts are populated, the report part roughly a fifth
    report = [s for s in stems if S.is_report(s)]
    assert 5 <= len(report) <= 25


def test_parts_are_disjoint_and_cover_everything():
    stems = [f'{i:06d}' for i in range(40)]
    fit, report = S.split_stems(stems, 'fit'), S.split_stems(stems, 'report')
    assert not set(fit) & set(report)
    assert sorted(fit + report) == stems
    assert S.split_stems(stems, 'all') == stems
    assert fit == [s for s in stems if s in fit]      # order kept
    assert all(S.part_of(s) == 'report' for s in report) and all(S.part_of(s) == 'fit' for s in fit)


def test_unknown_split_name_is_refused():
    with pytest.raises(ValueError, match='split must be'):
        S.in_split('000001', 'test')


def test_every_dataset_module_uses_the_one_rule():
    from depthmarks_ros.core.face import datasets as face
    from depthmarks_ros.core.fusion import real_data as fusion
    from depthmarks_ros.core.stereo import datasets as stereo
    assert face.is_report is S.is_report and stereo.is_report is S.is_report
    assert fusion.in_report_split is S.is_report
    assert face.SPLIT_RULE == stereo.SPLIT_RULE == fusion.SPLIT_RULE == S.SPLIT_RULE
    with pytest.raises(ValueError):
        fusion.split_stems(['000001'], 'all')     # the fusion fit command takes fit or report only


def test_folds_and_validation_part_are_independent_of_the_split():
    stems = [f'image{i:05d}' for i in range(400)]
    fit = S.split_stems(stems, 'fit')
    folds = [S.fold_of(s) for s in fit]
    assert set(folds) == set(range(5))
    assert min(folds.count(k) for k in range(5)) > len(fit) / 10      # every fold populated
    for s in stems[:50]:
        assert S.fold_of(s) == int(hashlib.sha1(s.encode()).hexdigest(), 16) // 5 % 5
        assert S.is_validation(s) == (int(hashlib.md5(s.encode()).hexdigest(), 16) % 5 == 0)
    val = [s for s in fit if S.is_validation(s)]
    assert 0.1 < len(val) / len(fit) < 0.3
    from depthmarks_ros.core.face import model_fit, sigma_fit
    assert list(sigma_fit.fold_of(fit[:20])) == folds[:20]
    assert model_fit._fold is S.fold_of and model_fit._validation is S.is_validation
