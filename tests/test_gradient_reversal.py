"""GradientReversal: identity forward, -lambda * dy backward; the module contract; PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes

import nanogan
from nanogan import Dense, GradientReversal, Sequential
from nanogan.gradcheck import numerical_gradient, rel_error
from nanogan.layers.serialize import module_from_config, module_to_config


@settings(max_examples=20, deadline=None)
@given(shape=array_shapes(min_dims=1, max_dims=4, max_side=5),
       lam=st.floats(0.0, 10.0), dtype=st.sampled_from([np.float32, np.float64]))
def test_identity_forward_reversed_backward(shape, lam, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    layer = GradientReversal(lam)
    y, cache = layer.forward(x)
    np.testing.assert_array_equal(y, x)
    dx = layer.backward(dy, cache)
    assert dx.dtype == dtype and dx.shape == shape
    np.testing.assert_allclose(dx, -dtype(lam) * dy, rtol=1e-6)
    assert layer.backward(dy, cache, input_grad=False) is None


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0, 3.0])
def test_central_differences_times_minus_lambda(lam):
    """The layer is not the gradient of its forward pass on purpose: central differences measure
    the identity's gradient ``dy``, and the layer must report exactly ``-lambda`` times it."""
    layer = GradientReversal(lam)
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    num = numerical_gradient(lambda: float(np.sum(layer(x) * dy)), x)
    dx = layer.backward(dy, layer.forward(x)[1])
    assert rel_error(dx, -lam * num) < 1e-8 or lam == 0.0
    assert np.abs(dx + lam * num).max() < 1e-8


def test_domain_adversarial_gradients_match_pytorch(torch, rng):
    """feature -> GRL -> domain head: the head's parameter gradient is the plain one, the
    features' (and so the extractor's) gradient is -lambda times the plain one, as a PyTorch
    autograd Function with the same rule."""
    lam = 0.7

    class GRL(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.view_as(x)

        @staticmethod
        def backward(ctx, g):
            return -lam * g

    feat = Dense(5, 4, rng=rng, dtype=np.float64)
    head = Dense(4, 1, rng=rng, dtype=np.float64)
    net = Sequential(feat, GradientReversal(lam), head)
    x = rng.standard_normal((6, 5))
    target = rng.integers(0, 2, (6, 1)).astype(np.float64)
    logits, cache = net.forward(x)
    value, d_logits = nanogan.losses.bce_with_logits(logits, target)
    net.zero_grad()
    dx = net.backward(d_logits, cache)

    tf, th = torch.nn.Linear(5, 4).double(), torch.nn.Linear(4, 1).double()
    tf.load_state_dict({k: torch.tensor(v) for k, v in feat.state_dict().items()})
    th.load_state_dict({k: torch.tensor(v) for k, v in head.state_dict().items()})
    tx = torch.tensor(x, requires_grad=True)
    out = th(GRL.apply(tf(tx)))
    ref = torch.nn.functional.binary_cross_entropy_with_logits(out, torch.tensor(target))
    ref.backward()
    assert value == pytest.approx(ref.item(), rel=1e-12)
    assert rel_error(dx, tx.grad.numpy()) < 1e-12
    for name, t in (("0.weight", tf.weight), ("0.bias", tf.bias), ("2.weight", th.weight),
                    ("2.bias", th.bias)):
        assert rel_error(net.grads[name], t.grad.numpy()) < 1e-12, name


def test_module_contract_and_config():
    layer = GradientReversal(0.3)
    assert layer.params == {} and layer.state_dict() == {}
    again = module_from_config(module_to_config(layer))
    assert isinstance(again, GradientReversal) and again.lambda_ == 0.3
    layer.lambda_ = 2.0  # a schedule may change it between steps
    assert repr(layer) == "GradientReversal(lambda_=2.0)"
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="lambda_"):
            GradientReversal(bad)
    with pytest.raises(ValueError, match="floating-point"):
        layer.forward(np.ones((2, 2), dtype=np.int64))
