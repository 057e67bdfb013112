"""LatentPath: records checked against z, selection, concatenation, disk round trip."""

import pytest
import torch

from latentnav.checkpoint import CheckpointError, save_tensors
from latentnav.navigation.path import CHECKPOINT_FORMAT, LatentPath


def make(b=4, t=5, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, t + 1, d, generator=g)
    records = {
        "d_score": torch.rand(b, t + 1, generator=g),
        "accepted": torch.rand(b, t + 1, generator=g) > 0.5,
        "iterations": torch.arange(b),
    }
    return LatentPath(z, records, "stepwise", {"eps": 0.2, "steps": t})


def test_records_must_match_the_leading_dims_of_z():
    z = torch.zeros(2, 4, 3)
    with pytest.raises(ValueError, match="record 'energy' must have shape \\(2, 4\\)"):
        LatentPath(z, {"energy": torch.zeros(3)})
    with pytest.raises(ValueError, match="z must be"):
        LatentPath(torch.zeros(4, 3))
    assert LatentPath(z).records == {} and LatentPath(z).steps == 3


def test_missing_records_raise_a_clear_error():
    path = LatentPath(torch.zeros(2, 4, 3), method="slerp")
    with pytest.raises(AttributeError, match="method 'slerp'\\) has no record 'd_score'"):
        _ = path.d_score
    with pytest.raises(AttributeError, match="'accepted'"):
        _ = path.flagged


@pytest.mark.parametrize("index", [0, 2, -1, -4])
def test_int_selects_that_pair_including_negative_ints(index):
    path = make()
    one = path[index]
    assert one.batch_size == 1
    assert torch.equal(one.z[0], path.z[index])
    assert torch.equal(
        one.records["iterations"], path.records["iterations"][index : index + 1]
    ) or (
        index < 0 and torch.equal(one.records["iterations"][0], path.records["iterations"][index])
    )
    with pytest.raises(IndexError):
        path[4]


def test_slices_and_masks_select_the_same_pairs_in_every_record():
    path = make()
    mask = torch.tensor([True, False, True, True])
    for index, rows in ((slice(1, 3), [1, 2]), (mask, [0, 2, 3]), (torch.tensor([3, 0]), [3, 0])):
        part = path[index]
        assert torch.equal(part.z, path.z[rows])
        for k, v in path.records.items():
            assert torch.equal(part.records[k], v[rows])
    with pytest.raises(IndexError, match="mask"):
        path[torch.tensor([True, False])]


def test_cat_undoes_a_split_and_refuses_different_records():
    path = make()
    again = LatentPath.cat([path[:1], path[1:3], path[3:]])
    assert torch.equal(again.z, path.z) and again.config == path.config
    assert all(torch.equal(again.records[k], v) for k, v in path.records.items())
    with pytest.raises(ValueError, match="cannot concatenate"):
        LatentPath.cat([path, LatentPath(path.z, method="stepwise")])


def test_save_and_load_round_trip(tmp_path):
    path = make()
    loaded = LatentPath.load(path.save(tmp_path / "p.safetensors"))
    assert torch.equal(loaded.z, path.z)
    assert loaded.method == path.method and loaded.config == path.config
    for k, v in path.records.items():
        assert loaded.records[k].dtype == v.dtype and torch.equal(loaded.records[k], v)


def test_load_rejects_records_that_do_not_match_z(tmp_path):
    tensors = {"z": torch.zeros(2, 4, 3), "record.energy": torch.zeros(3)}
    file = save_tensors(tmp_path / "bad.safetensors", tensors, CHECKPOINT_FORMAT, {"method": "x"})
    with pytest.raises(CheckpointError, match="record 'energy' must have shape"):
        LatentPath.load(file)


def test_to_and_decode_keep_shapes():
    path = make()
    decoder = torch.nn.Linear(3, 7)
    aae = torch.nn.Module()
    aae.decoder = decoder
    frames = path.to("cpu").decode(aae, batch_size=5)
    assert frames.shape == (4, 6, 7)
    torch.testing.assert_close(frames, decoder(path.z).detach())
