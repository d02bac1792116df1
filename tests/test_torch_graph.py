"""Channel groups: what couples, what blocks, and why."""
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from permsolve import zoo  # noqa: E402
from permsolve.torch.graph import channel_graph  # noqa: E402


def _x():
    return zoo.digits("val")[0][:4]


def _groups(g):
    return {grp.name: sorted(str(b) for b in grp.bindings) for grp in g.free_groups()}


def test_mlp_groups_and_io_blocked():
    g = channel_graph(zoo.build("mlp"), _x())
    assert _groups(g) == {"fc1": ["fc1 rows", "fc2 cols"], "fc2": ["fc2 rows", "fc3 cols"]}
    reasons = [w for grp in g.blocked_groups() for w in grp.blocked]
    assert any("model input" in w for w in reasons) and any("model output" in w for w in reasons)


def test_alexnet_flatten_expands_channels():
    g = channel_graph(zoo.build("alexnet"), _x())
    grp = next(x for x in g.free_groups() if x.name == "features.7")
    cons = grp.consumers
    assert [(b.module, b.offset, b.n, b.unit) for b in cons] == [("classifier.2", 0, 64, 4)]


def test_resnet_residual_streams_share_one_permutation():
    g = channel_graph(zoo.build("resnet"), _x())
    free = g.free_groups()
    assert len(free) == 12
    stream = next(x for x in free if "conv1 rows" in [str(b) for b in x.bindings])
    rows = sorted(b.module for b in stream.producers)
    assert rows == ["conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"]
    chans = {b.module for b in stream.passengers}
    assert {"bn1", "layer1.0.bn2", "layer1.2.bn2"} <= chans
    cols = sorted(b.module for b in stream.consumers)
    assert cols == ["layer1.0.conv1", "layer1.1.conv1", "layer1.2.conv1", "layer2.0.conv1",
                    "layer2.0.downsample.0"]
    s2 = next(x for x in free if x.name.startswith("layer2.0.downsample.0"))
    assert sorted(b.module for b in s2.producers) == ["layer2.0.conv2", "layer2.0.downsample.0",
                                                      "layer2.1.conv2", "layer2.2.conv2"]


def test_concat_offsets_and_depthwise():
    g = channel_graph(zoo.build("concatnet"), _x())
    by = {grp.name: grp for grp in g.free_groups()}
    pw = {(b.module, b.role): (b.offset, b.n, b.unit) for b in by["pw"].bindings}
    assert pw[("bn", "channels")] == (32, 48, 1)
    assert pw[("conv", "cols")] == (32 * 9, 48, 9)
    stem = {(b.module, b.role) for b in by["stem.0"].bindings}
    assert ("dw", "channels") in stem and ("pw", "cols") in stem


class _Odd(nn.Module):
    def forward(self, x):
        return x * 2 if x.sum() > 0 else x   # data-dependent control flow: fx cannot trace it


class _WithOdd(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.odd, self.b, self.c = nn.Linear(6, 8), _Odd(), nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.c(torch.relu(self.b(self.odd(self.a(x)))))


def test_untraceable_module_is_opaque_and_blocks_its_channels():
    g = channel_graph(_WithOdd(), torch.randn(3, 6))
    assert list(g.opaque) == ["odd"] and g.opaque["odd"]
    assert _groups(g) == {"b": ["b rows", "c cols"]}
    blocked = [grp for grp in g.blocked_groups() if any("odd" in w for w in grp.blocked)]
    assert blocked and "a rows" in [str(b) for b in blocked[0].bindings]


def test_untraceable_top_level_permutes_nothing():
    class Top(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)

        def forward(self, x):
            return self.a(x) if x.sum() > 0 else x
    g = channel_graph(Top(), torch.randn(2, 4))
    assert not g.traced and g.free_groups() == [] and "" in g.opaque


@pytest.mark.parametrize("middle, reason", [
    (lambda: nn.Conv2d(8, 8, 3, padding=1, groups=2), "grouped conv"),
    (lambda: nn.Upsample(scale_factor=2), "not a module the channel graph knows"),
    (lambda: nn.GroupNorm(2, 8), "GroupNorm"),
])
def test_unknown_or_grouped_blocks(middle, reason):
    m = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), middle(), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
    g = channel_graph(m, torch.randn(2, 1, 8, 8), tracer="fx")   # fx's rules; auto permutes grouped convs
    msgs = [w for grp in g.blocked_groups() for w in grp.blocked]
    assert any(reason in w for w in msgs), msgs
    assert all(b.module != "0" for grp in g.free_groups() for b in grp.bindings)


def test_shared_module_is_blocked():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.s, self.c = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 2)

        def forward(self, x):
            return self.c(self.s(torch.relu(self.s(self.a(x)))))
    g = channel_graph(Twice(), torch.randn(2, 4))
    assert all(b.module != "s" for grp in g.free_groups() for b in grp.bindings)
    assert any("called 2 times" in w for grp in g.blocked_groups() for w in grp.blocked)


def test_slicing_blocks():
    class Slice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.c = nn.Linear(4, 8), nn.Linear(4, 2)

        def forward(self, x):
            return self.c(self.a(x)[:, :4])
    g = channel_graph(Slice(), torch.randn(2, 4))
    assert g.free_groups() == []
    assert any("slicing" in w for grp in g.blocked_groups() for w in grp.blocked)


def test_layernorm_conv1d_and_reshape():
    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.Conv1d(3, 8, 3, padding=1), nn.Conv1d(8, 6, 3, padding=1)
            self.fc, self.ln, self.out = nn.Linear(6 * 5, 16), nn.LayerNorm(16), nn.Linear(16, 2)

        def forward(self, x):
            y = self.c2(torch.relu(self.c1(x)))
            y = y.view(y.size(0), -1)
            return self.out(self.ln(self.fc(y)))
    g = channel_graph(Seq(), torch.randn(2, 3, 5))
    by = {grp.name: {(b.module, b.role, b.unit) for b in grp.bindings} for grp in g.free_groups()}
    assert by["c1"] == {("c1", "rows", 1), ("c2", "cols", 3)}
    assert by["c2"] == {("c2", "rows", 1), ("fc", "cols", 5)}
    assert by["fc"] == {("fc", "rows", 1), ("ln", "channels", 1), ("out", "cols", 1)}
