"""The weights shipped in the package: present, loadable, and good on video they never saw."""

import pytest

from lma_perception.eval.evaluator import LMA, SINGLE_FRAME, evaluate
from lma_perception.eval.sources import open_dataset
from lma_perception.models.checkpoint import DEFAULT_WEIGHTS
from lma_perception.runtime.engine import EngineConfig, SegmentationEngine
from lma_perception.synthetic.generator import SynthConfig, write_dataset

# A seed and split name that neither training nor the README's test splits used; the hard
# degradation mix, so that a few bursts fall into two short sequences.
SYNTH = SynthConfig(cameras=('front',), seed=2026, degradation_rate=0.3,
                    degradation_strength=1.5)
SPLIT = 'check'


def shipped_engine() -> SegmentationEngine:
    return SegmentationEngine.from_checkpoint(None, EngineConfig(device='cpu'))


@pytest.fixture(scope='module')
def paths(tmp_path_factory):
    """Both paths of the shipped weights scored on two fresh synthetic sequences."""
    tree = write_dataset(tmp_path_factory.mktemp('synth'), SYNTH, SPLIT, 2)
    frames, dataset = open_dataset(tree, split=SPLIT)
    result = evaluate(shipped_engine(), frames, dataset, compare_single_frame=True)
    return result.to_dict()['paths']


def test_the_default_weights_are_shipped_and_load():
    assert DEFAULT_WEIGHTS.is_file()
    engine = shipped_engine()
    assert engine.checkpoint.config.variant == 'lma_erfnet'
    assert engine.uses_memory
    assert tuple(engine.input_size) == (128, 256)


def test_they_segment_unseen_video(paths):
    for path in (LMA, SINGLE_FRAME):
        assert paths[path]['dense']['frames'] == 60
        assert paths[path]['dense']['pixel_accuracy'] > 0.7
        assert paths[path]['dense']['miou'] > 0.22


def test_their_memory_helps_on_degraded_frames_and_against_flicker(paths):
    lma, single = paths[LMA], paths[SINGLE_FRAME]
    assert lma['degraded']['frames'] > 0
    assert lma['degraded']['miou'] > single['degraded']['miou']
    assert lma['temporal_consistency']['flip_rate'] < single['temporal_consistency']['flip_rate']
