import os

import pytest
import torch

from ghost.model.mamba import MambaMixer

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the parity check never needs the network
transformers = pytest.importorskip("transformers")


def _reference_mixer(dim=32, d_state=16, d_conv=4, expand=2, dt_rank=2):
    from transformers import MambaConfig
    from transformers.models.mamba.modeling_mamba import MambaMixer as HFMixer

    config = MambaConfig(
        hidden_size=dim,
        state_size=d_state,
        conv_kernel=d_conv,
        expand=expand,
        time_step_rank=dt_rank,
        use_bias=False,
        use_conv_bias=True,
    )
    return HFMixer(config, layer_idx=0).eval()


def test_parameter_names_and_shapes_match_the_reference():
    ours = MambaMixer(32, d_state=16, d_conv=4, expand=2, dt_rank=2)
    theirs = _reference_mixer()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }


@pytest.mark.parametrize("length", [1, 5, 17])
def test_outputs_match_transformers_slow_path_with_the_same_weights(length):
    theirs = _reference_mixer()
    ours = MambaMixer(32, d_state=16, d_conv=4, expand=2, dt_rank=2)
    with torch.no_grad():
        for p in theirs.parameters():  # move away from the init so every weight matters
            p.add_(0.1 * torch.randn_like(p))
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, length, 32)
    with torch.no_grad():
        expected = theirs(x)
        got = ours(x)
    assert (got - expected).abs().max().item() < 1e-5


def test_step_mode_equals_the_full_forward():
    mixer = MambaMixer(24, d_state=8, dt_rank=3)
    x = torch.randn(3, 11, 24)
    with torch.no_grad():
        full = mixer(x)
        state = mixer.empty_state(3)
        steps = torch.stack([mixer.step(x[:, t], state) for t in range(11)], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-5)


def test_continuing_from_a_state_equals_one_pass():
    mixer = MambaMixer(24, d_state=8, dt_rank=3)
    x = torch.randn(2, 13, 24)
    with torch.no_grad():
        full = mixer(x)
        head, state = mixer(x[:, :6], want_state=True)
        tail, _ = mixer(x[:, 6:], state=state)
    torch.testing.assert_close(torch.cat([head, tail], 1), full, atol=1e-5, rtol=1e-5)
