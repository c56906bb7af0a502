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


@pytest.fixture(scope="session")
def nan_at():
    """``nan_at(k)``: FT whose loss turns NaN at step k (0-based), for the non-finite-loss paths."""
    from rftlab.methods import FT

    def make(bad_step: int):
        class NaNAt(FT):
            name = f"nan-at-{bad_step}"

            def loss(self, classifier, images, labels, step):
                terms = super().loss(classifier, images, labels, step)
                if step == bad_step:
                    terms["loss"] = terms["loss"] * float("nan")
                return terms
        return NaNAt()
    return make


@pytest.fixture(scope="session")
def disk_task(small_spurious, tmp_path_factory):
    """``small_spurious`` with its train and val images written as PNG files and read back lazily,
    as a real dataset's are."""
    import dataclasses

    from PIL import Image

    from rftlab.datasets._common import make_split
    root = tmp_path_factory.mktemp("disk-task")

    def on_disk(split):
        (root / split.name).mkdir()
        paths = [root / split.name / f"{i:04d}.png" for i in range(len(split))]
        for path, img in zip(paths, split.images):
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(path)
        return make_split(split.name, paths, split.labels, split.meta)
    return dataclasses.replace(small_spurious, train=on_disk(small_spurious.train), val=on_disk(small_spurious.val))


def pytest_collection_modifyitems(config, items):
    # nbval: plotly and widget outputs are never compared (their JSON carries random ids)
    for item in items:
        if hasattr(item, "skip_compare"):
            item.skip_compare += ("text/html", "application/vnd.plotly.v1+json",
                                  "application/vnd.jupyter.widget-view+json", "image/png")


@pytest.fixture(autouse=True)
def _shared_clip_is_left_untouched(request):
    """The session's ``clip`` is shared by every test: a test that trains or converts it in
    place (instead of a copy) would change what later tests see."""
    if "clip" not in request.fixturenames:
        yield
        return
    clip = request.getfixturevalue("clip")
    before = {k: v.detach().clone() for k, v in clip.model.state_dict().items()}
    strides = {k: v.stride() for k, v in clip.model.state_dict().items()}
    kinds = [type(m) for m in clip.model.modules()]
    mode = clip.model.training
    yield
    after = clip.model.state_dict()
    changed = [k for k in before if k not in after or not torch.equal(before[k], after[k])]
    assert not changed, f"this test changed the shared clip fixture in place (e.g. {changed[:3]}): copy it"
    relaid = [k for k, v in after.items() if v.stride() != strides.get(k)]
    assert not relaid, f"this test changed the memory layout of the shared clip (e.g. {relaid[:3]}): copy it"
    assert kinds == [type(m) for m in clip.model.modules()], "this test swapped modules of the shared clip: copy it"
    assert clip.model.training == mode, "this test switched the shared clip between train and eval mode: copy it"
