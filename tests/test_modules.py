"""frozen / evaluating: the one save-and-restore of module modes and parameter gradients."""

import pytest
from torch import nn

from latentnav._modules import evaluating, frozen


def _net():
    net = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5), nn.Linear(3, 1))
    net[1].eval()  # mixed modes inside one module must come back as they were
    net[2].weight.requires_grad_(False)
    return net


def _state(net):
    return [m.training for m in net.modules()], [p.requires_grad for p in net.parameters()]


@pytest.mark.parametrize("context", [evaluating, frozen])
def test_state_is_restored_after_the_block_and_after_an_error(context):
    net, other = _net(), _net()
    before = _state(net)
    with context(net, other, net):  # a module named twice is handled once
        assert not any(m.training for m in net.modules())
        if context is frozen:
            assert not any(p.requires_grad for p in net.parameters())
        else:
            assert _state(net)[1] == before[1]
    assert _state(net) == before
    with pytest.raises(RuntimeError), context(net):
        raise RuntimeError("inside")
    assert _state(net) == before
