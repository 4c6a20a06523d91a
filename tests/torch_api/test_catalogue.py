"""Every transform of TorchRL 0.14.1's transforms reference page exists in numbarl.torch_api.

The names are those of the reference page (shared/reference/torchrl-transforms-catalogue.txt):
each must be importable from ``numbarl.torch_api``, be a ``Transform``
subclass, and have a conformance-suite entry in ``transform_cases.CASES``.
"""
import pytest

import numbarl.torch_api as api
from transform_cases import CASES

CATALOGUE = [
    # observation
    "ObservationNorm", "ToTensorImage", "GrayScale", "Resize", "CenterCrop", "UnsqueezeTransform",
    "SqueezeTransform", "FlattenObservation", "CatFrames", "FrameSkipTransform", "PermuteTransform",
    "NextObservationDelta",
    # reward
    "RewardScaling", "RewardClipping", "RewardSum", "BinarizeReward", "Reward2GoTransform",
    # action
    "ActionScaling", "FlattenAction", "ActionDiscretizer", "ActionMask",
    # utility
    "StepCounter", "DTypeCastTransform", "DoubleToFloat", "DeviceCastTransform", "VecNorm", "ExcludeTransform",
    "InitTracker", "TensorDictPrimer", "RenameTransform", "SelectTransform", "TerminateTransform", "ExpandAs",
    "NoopResetEnv", "BatchSizeTransform", "BurnInTransform",
]


def test_catalogue_has_no_duplicates():
    assert len(CATALOGUE) == len(set(CATALOGUE)) == 36


@pytest.mark.parametrize("name", CATALOGUE)
def test_catalogue_transform_exists(name):
    cls = getattr(api, name, None)
    assert cls is not None, f"numbarl.torch_api has no {name}"
    assert name in api.__all__
    assert isinstance(cls, type) and issubclass(cls, api.Transform)
    assert name in CASES, f"{name} has no entry in the conformance registry (tests/transform_cases.py)"
    assert ">>>" in (cls.__doc__ or ""), f"{name} has no runnable example in its docstring"
