"""The exercise checkers: solutions pass, named mistakes are named, and a checker never raises.

The learners' SOLUTIONS live here and nowhere else in the repository.
"""

import html

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toydiff import exercises
from toydiff.engine import samplers
from toydiff.engine.processes import VE
from toydiff.exercises import CHECKERS, Feedback

# ----------------------------------------------------------------------------- solutions


def spiral(n):
    s = jnp.pi / 2 + jnp.linspace(0.0, 1.0, n) * 5 * jnp.pi
    return jnp.stack([s * jnp.cos(s), s * jnp.sin(s)], axis=-1) / (5 * jnp.pi)


def pixel_point(pixels):
    return pixels / 127.5 - 1


def add_noise(x0, t, eps):
    sigma = 0.01 * 1000.0**t
    return x0 + sigma[:, None] * eps


def eps_target(x0, xt, sigma):
    return (xt - x0) / sigma[:, None]


def exact_denoiser(xt, sigma, data):
    d2 = jnp.sum((xt[:, None, :] - data[None, :, :]) ** 2, axis=-1)  # (n, m)
    w = jax.nn.softmax(-d2 / (2 * sigma**2), axis=-1)
    return w @ data


def ddpm_step(xt, eps_hat, sigma_t, sigma_r, z):
    mean = xt - (sigma_t - sigma_r**2 / sigma_t) * eps_hat
    return mean + sigma_r * jnp.sqrt(1 - sigma_r**2 / sigma_t**2) * z


def ddim_step(xt, eps_hat, sigma_t, sigma_r):
    return xt + (sigma_r - sigma_t) * eps_hat


def cfg(eps_c, eps_u, w):
    return eps_u + w * (eps_c - eps_u)


def negative(eps_c, eps_neg, w):
    return eps_neg + w * (eps_c - eps_neg)


SOLUTIONS = {
    "spiral": spiral,
    "pixel_point": pixel_point,
    "add_noise": add_noise,
    "eps_target": eps_target,
    "exact_denoiser": exact_denoiser,
    "ddpm_step": ddpm_step,
    "ddim_step": ddim_step,
    "cfg": cfg,
    "negative": negative,
}


def numpy_exact_denoiser(xt, sigma, data):
    """A plain-NumPy solution with the max subtracted by hand: also correct."""
    xt, data = np.asarray(xt, np.float64), np.asarray(data, np.float64)
    logits = -np.sum((xt[:, None] - data[None]) ** 2, axis=-1) / (2 * sigma**2)
    w = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (w / w.sum(axis=1, keepdims=True)) @ data


# ----------------------------------------------------------------------------- typical mistakes


def _spiral_s(n):
    return jnp.pi / 2 + jnp.linspace(0.0, 1.0, n) * 5 * jnp.pi


def _d2(xt, data):
    return jnp.sum((xt[:, None, :] - data[None, :, :]) ** 2, axis=-1)


def _posterior_std(sigma_t, sigma_r):
    return sigma_r * jnp.sqrt(1 - sigma_r**2 / sigma_t**2)


MISTAKES = [
    # chapter 0
    ("spiral", lambda n: spiral(n) * 5 * jnp.pi, "divide by s1"),
    (
        "spiral",
        lambda n: (lambda s: jnp.stack([s * jnp.cos(s), s * jnp.sin(s)], -1) / (5 * jnp.pi))(
            jnp.linspace(0.0, 1.0, n) * 5 * jnp.pi
        ),
        "started s at 0",
    ),
    (
        "spiral",
        lambda n: (lambda s: jnp.stack([s * jnp.sin(s), s * jnp.cos(s)], -1) / (5 * jnp.pi))(
            _spiral_s(n)
        ),
        "swapped sin and cos",
    ),
    (
        "spiral",
        lambda n: (lambda s: jnp.stack([jnp.cos(s), jnp.sin(s)], -1))(_spiral_s(n)),
        "circle",
    ),
    # chapter 2
    ("pixel_point", lambda v: v / 127.5, "-1 shift"),
    ("pixel_point", lambda v: v / 255, "divided by 255"),
    ("pixel_point", lambda v: v / 255 - 1, "divided by 255"),
    ("pixel_point", lambda v: (v / 127.5 - 1)[:, ::-1], "swapped the two pixels"),
    ("pixel_point", lambda v: v * 2 / 255 - 1, "overflow"),
    # chapter 3
    ("add_noise", lambda x0, t, eps: x0 + ((0.01 * 1000.0**t) ** 2)[:, None] * eps, "variance"),
    ("add_noise", lambda x0, t, eps: (0.01 * 1000.0**t)[:, None] * eps, "forgot x0"),
    ("add_noise", lambda x0, t, eps: x0 + 10 * t[:, None] * eps, "linear schedule"),
    ("add_noise", lambda x0, t, eps: x0 + eps, "forgot to scale eps"),
    # chapter 4
    ("eps_target", lambda x0, xt, s: (x0 - xt) / s[:, None], "sign error"),
    ("eps_target", lambda x0, xt, s: xt - x0, "forgot to divide by sigma"),
    ("eps_target", lambda x0, xt, s: (xt - x0) / s[:, None] ** 2, "sigma^2"),
    ("eps_target", lambda x0, xt, s: xt - x0 / s[:, None], "precedence"),
    # chapter 5
    (
        "exact_denoiser",
        lambda xt, s, d: jax.nn.softmax(-_d2(xt, d) / (2 * s), axis=-1) @ d,
        "square sigma",
    ),
    (
        "exact_denoiser",
        lambda xt, s, d: jax.nn.softmax(_d2(xt, d) / (2 * s**2), axis=-1) @ d,
        "sign error",
    ),
    (  # the naive version overflows at small sigma; the checker names it at the first sigma
        "exact_denoiser",
        lambda xt, s, d: (lambda w: w / w.sum(1, keepdims=True) @ d)(
            np.exp(np.asarray(_d2(xt, d), np.float64) / (2 * s**2))
        ),
        "farthest",
    ),
    ("exact_denoiser", lambda xt, s, d: jnp.exp(-_d2(xt, d) / (2 * s**2)) @ d, "normalise"),
    (
        "exact_denoiser",
        lambda xt, s, d: jax.nn.softmax(-_d2(xt, d) / s**2, axis=-1) @ d,
        "forgot the 2",
    ),
    (
        "exact_denoiser",
        lambda xt, s, d: jax.nn.softmax(-_d2(xt, d) / (2 * s**2), axis=0) @ d,
        "wrong axis",
    ),
    ("exact_denoiser", lambda xt, s, d: d[jnp.argmin(_d2(xt, d), axis=-1)], "nearest"),
    # chapter 6
    (
        "ddpm_step",
        lambda xt, e, st, sr, z: xt - (st - sr**2 / st) * e,
        "no noise term",
    ),
    (
        "ddpm_step",
        lambda xt, e, st, sr, z: xt - (st - sr**2 / st) * e + sr * z,
        "posterior std",
    ),
    (
        "ddpm_step",
        lambda xt, e, st, sr, z: xt + (st - sr**2 / st) * e + _posterior_std(st, sr) * z,
        "sign error",
    ),
    (
        "ddpm_step",
        lambda xt, e, st, sr, z: xt - (st - sr**2 / st) * e + sr * (1 - sr**2 / st**2) * z,
        "square root",
    ),
    (
        "ddpm_step",
        lambda xt, e, st, sr, z: xt + (sr - st) * e + _posterior_std(st, sr) * z,
        "DDIM step size",
    ),
    ("ddpm_step", lambda xt, e, st, sr, z: ddim_step(xt, e, st, sr), "DDIM"),
    # chapter 7
    ("ddim_step", lambda xt, e, st, sr: xt - (sr - st) * e, "sign error"),
    ("ddim_step", lambda xt, e, st, sr: xt + (sr**2 - st**2) * e, "sigma^2"),
    ("ddim_step", lambda xt, e, st, sr: xt - (st - sr**2 / st) * e, "DDPM step size"),
    ("ddim_step", lambda xt, e, st, sr: (sr - st) * e, "forgot to start from xt"),
    ("ddim_step", lambda xt, e, st, sr: xt - st * e, "x0_hat"),
    # chapter 8
    ("cfg", lambda c, u, w: c + w * (c - u), "smalldiffusion"),
    ("cfg", lambda c, u, w: c + w * (u - c), "swapped"),
    ("cfg", lambda c, u, w: w * (c - u), "forgot the base"),
    ("cfg", lambda c, u, w: u + w * (u - c), "sign error"),
    # chapter 9
    ("negative", lambda c, n, w: c + w * (n - c), "toward the negative"),
    ("negative", lambda c, n, w: c - w * n, "eps_c - w eps_neg"),
    ("negative", lambda c, n, w: c + w * (c - n), "smalldiffusion"),
    ("negative", lambda c, n, w: w * (c - n), "forgot the base"),
]


def _stub(*args):
    raise NotImplementedError


def _boom(*args):
    raise ValueError("something\nwent wrong\n  on three lines")


def _wrong_shape(*args):
    return jnp.zeros((3,))


# ----------------------------------------------------------------------------- tests


def test_registry_has_every_chapter():
    assert set(CHECKERS) == set(SOLUTIONS)
    assert all(callable(check) for check in CHECKERS.values())


@pytest.mark.parametrize("name", list(SOLUTIONS))
def test_solution_passes(name):
    feedback = CHECKERS[name](SOLUTIONS[name])
    assert feedback.passed, feedback.message
    assert feedback and str(feedback).startswith("✅")


def test_plain_numpy_solution_passes():
    assert exercises.check_exact_denoiser(numpy_exact_denoiser)


@pytest.mark.parametrize(
    ("name", "fn", "keyword"), MISTAKES, ids=[f"{m[0]}-{m[2]}" for m in MISTAKES]
)
def test_mistake_is_named(name, fn, keyword):
    feedback = CHECKERS[name](fn)
    assert not feedback
    assert keyword.lower() in feedback.message.lower(), feedback.message
    assert str(feedback).startswith("❌")


@pytest.mark.parametrize("name", list(CHECKERS))
def test_stub_is_not_done_yet(name):
    feedback = CHECKERS[name](_stub)
    assert not feedback.passed
    assert feedback.message.startswith("not done yet: fill in the function")


@pytest.mark.parametrize("name", list(CHECKERS))
def test_wrong_shape_names_both_shapes(name):
    feedback = CHECKERS[name](_wrong_shape)
    assert not feedback
    assert "shape" in feedback.message and "(3,)" in feedback.message and "2)" in feedback.message


@pytest.mark.parametrize("name", list(CHECKERS))
def test_exception_is_reported_on_one_line(name):
    feedback = CHECKERS[name](_boom)
    assert not feedback
    assert "ValueError" in feedback.message and "went wrong" in feedback.message
    assert "\n" not in feedback.message and "\n" not in str(feedback)


@pytest.mark.parametrize(
    "bad",
    [None, "a string", {"a": 1}, 3, np.full((64, 2), np.nan)],
    ids=["none", "str", "dict", "scalar", "nan"],
)
@pytest.mark.parametrize("name", list(CHECKERS))
def test_checkers_never_raise(name, bad):
    feedback = CHECKERS[name](lambda *args: bad)
    assert isinstance(feedback, Feedback) and not feedback
    assert "\n" not in feedback.message


def test_specific_messages_for_odd_answers():
    assert "return" in exercises.check_cfg(lambda c, u, w: None).message
    assert "NaN" in exercises.check_cfg(lambda c, u, w: c * np.nan).message
    assert "transposed" in exercises.check_spiral(lambda n: spiral(n).T).message
    assert "expected a function" in exercises.check_cfg(42).message


def test_broadcasting_error_gets_a_hint():
    feedback = exercises.check_add_noise(lambda x0, t, eps: x0 + 0.01 * 1000.0**t * eps)
    assert not feedback
    assert "raised" in feedback.message and "[:, None]" in feedback.message


def test_unnamed_mistakes_get_a_generic_diagnosis():
    assert "sign" in exercises.check_spiral(lambda n: -spiral(n)).message
    assert "constant factor" in exercises.check_cfg(lambda c, u, w: 2 * cfg(c, u, w)).message
    message = exercises.check_cfg(lambda c, u, w: cfg(c, u, w) + 0.1).message
    assert message.startswith("wrong values") and "row" in message


def test_learner_cannot_change_the_inputs():
    def scribble(v):
        v[:] = 0
        return v

    assert not exercises.check_pixel_point(scribble)
    assert exercises.check_pixel_point(pixel_point)


def test_checkers_are_deterministic():
    first = exercises.check_cfg(lambda c, u, w: cfg(c, u, w) + 0.1).message
    assert first == exercises.check_cfg(lambda c, u, w: cfg(c, u, w) + 0.1).message


def test_ddpm_reference_is_one_library_sampler_step():
    """The ddpm checker's reference is the library's sampler with the sampler's own noise."""
    key = jax.random.key(1)
    xt, eps_hat = jax.random.normal(key, (2, 16, 2))
    sigma_t, sigma_r = 0.8, 0.5
    denoiser = jax.tree_util.Partial(exercises.sampling._fixed_eps, eps_hat, jnp.float32(sigma_t))
    process = VE(sigma_min=sigma_r, sigma_max=sigma_t)
    got = samplers.ddpm(key, denoiser, process, xt, 2)[1]  # schedule: sigma_t -> sigma_r -> clean
    z = jax.random.normal(jax.random.fold_in(key, 0), xt.shape, xt.dtype)
    np.testing.assert_allclose(got, ddpm_step(xt, eps_hat, sigma_t, sigma_r, z), atol=1e-5)


@pytest.mark.parametrize("passed", [True, False])
def test_feedback_displays_itself(passed):
    feedback = Feedback(passed, "a message with <tags> & more")
    assert bool(feedback) is passed
    assert str(feedback) == ("✅ " if passed else "❌ ") + feedback.message
    rendered = feedback._repr_html_()
    assert html.escape(feedback.message, quote=False) in rendered
    assert ("#1a7f37" if passed else "#cf222e") in rendered
    assert html.escape(feedback.message, quote=False) in feedback._repr_markdown_()


@pytest.mark.parametrize("name", list(SOLUTIONS))
def test_real_feedback_html_contains_its_message(name):
    for feedback in (CHECKERS[name](SOLUTIONS[name]), CHECKERS[name](_stub)):
        assert feedback.message in feedback._repr_html_()
