"""Uncertainty-aware landmark learning, batch commands: `depthmarks train-landmarks` and
`eval-landmarks` on annotated images."""
import numpy as np
import pytest

from depthmarks_ros.core.learning.inference import LandmarkUncertaintyModel

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def test_train_and_eval_commands_on_annotated_images(tmp_path):
    import cv2
    from skimage import data
    from depthmarks_ros.cli.main import main
    from depthmarks_ros.core.face.backends import DlibFace68
    from depthmarks_ros.core.pts_io import write_pts
    img = data.astronaut()
    lm = DlibFace68().process(img)[0].landmarks68
    for i, (flip, name) in enumerate(((False, 'a'), (True, 'b'))):
        im = img[:, ::-1].copy() if flip else img
        pts = np.column_stack([img.shape[1] - 1 - lm[:, 0], lm[:, 1]]) if flip else lm
        cv2.imwrite(str(tmp_path / f'{name}.png'), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
        write_pts(str(tmp_path / f'{name}.pts'), pts)
    assert main(['train-landmarks', '--data', str(tmp_path), '-o', str(tmp_path / 'model'), '--steps', '60',
                 '--copies', '3']) == 0
    assert main(['eval-landmarks', '--model', str(tmp_path / 'model'), '--data', str(tmp_path)]) == 0
    cfg = LandmarkUncertaintyModel.load(str(tmp_path / 'model')).config
    assert cfg['steps'] == 60 and np.isfinite(cfg['held_out']['nll']) and 0 <= cfg['held_out']['within_2'] <= 1
