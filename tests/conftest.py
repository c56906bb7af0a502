import os

import pytest
import torch

os.environ.setdefault("TQDM_DISABLE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def clip():
    """The shipped world CLIP (do not modify it in tests: copy it)."""
    import rftlab
    return rftlab.load_model()


@pytest.fixture(scope="session")
def small_spurious():
    import rftlab
    return rftlab.make_task("spurious-small", ("square", "cross"), 0.95, n_train=256, n_val=64, n_test=128, seed=3)


@pytest.fixture(scope="session")
def small_shift():
    import rftlab
    return rftlab.make_task("shift-small", ("circle", "square", "star", "ring"), None, ("photo",),
                            ("sketch", "painting"), n_train=128, n_val=64, n_test=64, seed=4)


def pytest_collection_modifyitems(config, items):
    # nbval: plotly and widget outputs are never compared (their JSON carries random ids)
    for item in items:
        if hasattr(item, "skip_compare"):
            item.skip_compare += ("text/html", "application/vnd.plotly.v1+json",
                                  "application/vnd.jupyter.widget-view+json", "image/png")
