import numpy as np
import pytest
import tensorflow as tf

from lcefr.layers import AdaBinConv2D, Maxout
from lcefr.quantizers import AdaBinWeight, ede_sign


def test_adabin_weight_takes_two_values_per_output_channel():
    rng = np.random.default_rng(0)
    kernel = tf.constant(rng.normal(0.3, 2.0, size=(3, 3, 8, 5)).astype("float32"))
    w_hat = AdaBinWeight()(kernel).numpy()
    k = kernel.numpy()
    for o in range(5):
        beta, alpha = k[..., o].mean(), k[..., o].std()
        np.testing.assert_allclose(np.unique(np.round(w_hat[..., o], 4)), np.round([beta - alpha, beta + alpha], 4), atol=1e-4)
        expected = np.where(k[..., o] - beta >= 0, beta + alpha, beta - alpha)
        np.testing.assert_allclose(w_hat[..., o], expected, rtol=1e-5, atol=1e-5)


def test_ede_gradient_is_k_t_sech2():
    x = tf.constant([-2.0, -0.1, 0.0, 0.3, 1.5])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = ede_sign(x, 2.0, 3.0)
    grad = tape.gradient(y, x).numpy()
    np.testing.assert_allclose(y.numpy(), [-1, -1, 1, 1, 1])
    np.testing.assert_allclose(grad, 2.0 * 3.0 * (1 - np.tanh(3.0 * x.numpy()) ** 2), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride", [1, 2])
def test_adabin_conv_equals_explicit_binarized_convolution(stride):
    rng = np.random.default_rng(stride)
    x = rng.normal(size=(2, 9, 9, 6)).astype("float32")
    layer = AdaBinConv2D(4, 3, strides=stride)
    layer.build(x.shape)
    layer.act_alpha.assign(0.7)
    layer.act_beta.assign(-0.2)
    got = layer(x).numpy()

    alpha, beta = 0.7, -0.2
    a_hat = alpha * (np.where((x - beta) / alpha >= 0, 1.0, -1.0) + beta)
    w_hat = layer.kernel_quantizer(layer.kernel).numpy()
    # pad so the binarized border value is +1, i.e. a_hat = alpha * (1 + beta) there
    pad_total = [max((int(np.ceil(9 / stride)) - 1) * stride + 3 - 9, 0)] * 2
    pads = [(0, 0)] + [(p // 2, p - p // 2) for p in pad_total] + [(0, 0)]
    padded = np.pad(a_hat, pads, constant_values=alpha * (1 + beta))
    want = tf.nn.conv2d(padded.astype("float32"), w_hat, strides=stride, padding="VALID").numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_adabin_conv_gradients_reach_alpha_and_beta():
    x = tf.random.normal((1, 6, 6, 4))
    layer = AdaBinConv2D(3, 3)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(layer(x) ** 2)
    grads = tape.gradient(y, [layer.kernel, layer.act_alpha, layer.act_beta])
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)
    assert float(tf.reduce_sum(tf.abs(grads[0]))) > 0


def test_maxout_two_slopes_and_config():
    layer = Maxout(pos_init=1.0, neg_init=0.25)
    x = tf.constant([[[-4.0, 2.0]]])
    np.testing.assert_allclose(layer(x).numpy(), [[[-1.0, 2.0]]])
    assert Maxout.from_config(layer.get_config()).neg_init == 0.25
