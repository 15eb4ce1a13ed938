"""The reference architectures against PyTorch, under every kernel set: DCGAN-28 and the MLP GAN,
weights both ways."""

from __future__ import annotations

import numpy as np
import pytest

from nanogan import dcgan_init
from nanogan.gradcheck import rel_error
from nanogan.layers.serialize import module_from_config, module_to_config
from nanogan.models import (
    dcgan28_discriminator,
    dcgan28_generator,
    mlp_discriminator,
    mlp_generator,
)


def torch_dcgan28(torch):
    nn = torch.nn
    G = nn.Sequential(
        nn.ConvTranspose2d(100, 128, 7, 1, 0, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
        nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 1, 4, 2, 1, bias=False), nn.Tanh(),
    )
    D = nn.Sequential(
        nn.Conv2d(1, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
        nn.Conv2d(128, 1, 7, 1, 0, bias=False), nn.Flatten(),
    )
    return G, D


def torch_mlp(torch):
    nn = torch.nn
    G = nn.Sequential(nn.Linear(100, 256), nn.LeakyReLU(0.2), nn.Linear(256, 256),
                      nn.LeakyReLU(0.2), nn.Linear(256, 784), nn.Tanh())
    D = nn.Sequential(nn.Linear(784, 256), nn.LeakyReLU(0.2), nn.Linear(256, 256),
                      nn.LeakyReLU(0.2), nn.Linear(256, 1))
    return G, D


def _to_torch(torch, state):
    return {k: torch.from_numpy(np.array(v)) for k, v in state.items()}


def _compare(torch, ours, theirs, x, dtype, tol, train=True):
    """Same forward, same input gradient, same parameter gradients, same buffers, for the
    plain network and for its fused plan (``nanogan.fast``)."""
    from nanogan.fast import Plan

    _compare_one(torch, ours, theirs, x, dtype, tol, train)
    _compare_one(torch, Plan(ours), theirs, x, dtype, tol, train)


def _compare_one(torch, ours, theirs, x, dtype, tol, train):
    theirs.train(train)
    theirs.zero_grad()
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = theirs(tx)
    dy = np.random.default_rng(3).standard_normal(ty.shape).astype(dtype)
    ty.backward(torch.from_numpy(dy))

    ours.zero_grad()
    y, cache = ours.forward(x, train=train)
    dx = ours.backward(dy, cache)
    assert rel_error(y, ty.detach().numpy()) < tol
    assert rel_error(dx, tx.grad.numpy()) < tol
    tparams = dict(theirs.named_parameters())
    assert set(ours.grads) == set(tparams)
    for k, g in ours.grads.items():
        err = rel_error(g, tparams[k].grad.numpy())
        assert err < tol, f"{k}: gradient relative error {err:.2e}"
    tstate = theirs.state_dict()
    for k, v in ours.state_dict().items():
        assert rel_error(v, tstate[k].numpy()) < tol, f"buffer/param {k} differs"


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-8), (np.float32, 1e-4)])
@pytest.mark.parametrize("direction", ["torch->nanogan", "nanogan->torch"])
def test_dcgan28_round_trip_with_pytorch(kernel_set, torch, dtype, tol, direction):
    G, D = dcgan28_generator(rng=0, dtype=dtype), dcgan28_discriminator(rng=1, dtype=dtype)
    dcgan_init(G, 2)
    dcgan_init(D, 3)
    tG, tD = torch_dcgan28(torch)
    if dtype == np.float64:
        tG, tD = tG.double(), tD.double()
    for ours, theirs in ((G, tG), (D, tD)):
        assert list(ours.state_dict()) == list(theirs.state_dict()), "keys or order differ"
        for k, v in theirs.state_dict().items():
            assert ours.state_dict()[k].shape == tuple(v.shape), k
        if direction == "nanogan->torch":
            theirs.load_state_dict(_to_torch(torch, ours.state_dict()))
        else:
            ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(4)
    z = rng.standard_normal((5, 100, 1, 1)).astype(dtype)
    x = np.tanh(rng.standard_normal((5, 1, 28, 28))).astype(dtype)
    _compare(torch, G, tG, z, dtype, tol, train=True)
    _compare(torch, D, tD, x, dtype, tol, train=True)
    _compare(torch, G, tG, z, dtype, tol, train=False)
    _compare(torch, D, tD, x, dtype, tol, train=False)


def test_mlp_round_trip_with_pytorch(kernel_set, torch):
    G, D = mlp_generator(rng=0, dtype=np.float64), mlp_discriminator(rng=1, dtype=np.float64)
    tG, tD = (m.double() for m in torch_mlp(torch))
    tG.load_state_dict(_to_torch(torch, G.state_dict()))
    D.load_state_dict({k: v.numpy() for k, v in tD.state_dict().items()})
    rng = np.random.default_rng(5)
    _compare(torch, G, tG, rng.standard_normal((7, 100)), np.float64, 1e-8)
    _compare(torch, D, tD, np.tanh(rng.standard_normal((7, 784))), np.float64, 1e-8)


def test_default_init_statistics_match_pytorch(torch):
    """PyTorch's default initialisation: same bounds (fan-in), so same spread of weights."""
    G = dcgan28_generator(rng=0)
    tG, _ = torch_dcgan28(torch)
    for k, v in tG.state_dict().items():
        if k.endswith("weight") and v.ndim == 4:
            ours = G.state_dict()[k]
            assert np.abs(ours).max() <= float(v.abs().max()) * 1.05 + 1e-6
            assert abs(ours.std() - float(v.std())) < 0.1 * float(v.std())


def test_dcgan_init_statistics():
    G = dcgan_init(dcgan28_generator(rng=0), 1)
    w = G.params["0.weight"]
    assert abs(w.mean()) < 1e-3 and abs(w.std() - 0.02) < 1e-3
    bn = G.params["1.weight"]
    assert abs(bn.mean() - 1) < 0.01 and abs(bn.std() - 0.02) < 0.01


def test_architecture_config_round_trip():
    for build in (dcgan28_generator, dcgan28_discriminator, mlp_generator, mlp_discriminator):
        m = build(rng=0)
        m2 = module_from_config(module_to_config(m))
        assert repr(m2) == repr(m)
        m2.load_state_dict(m.state_dict())
        x_shape = {dcgan28_generator: (2, 100, 1, 1), dcgan28_discriminator: (2, 1, 28, 28),
                   mlp_generator: (2, 100), mlp_discriminator: (2, 784)}[build]
        x = np.random.default_rng(0).standard_normal(x_shape).astype(np.float32)
        np.testing.assert_array_equal(m(x), m2(x))
