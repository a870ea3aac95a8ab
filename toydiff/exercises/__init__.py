"""Exercise checkers: test a learner's function against the library and say what is wrong.

Each chapter notebook ends with exercises. The learner fills in a small function, then passes it to
the chapter's checker::

    from toydiff.exercises import check_add_noise

    def add_noise(x0, t, eps):
        raise NotImplementedError  # your code here

    check_add_noise(add_noise)  # shows ❌ not done yet: ... until the function is filled in

A checker calls the function on inputs drawn with a fixed key, compares the result with the
library's own implementation, and compares it with the typical wrong answers too, so that a wrong
answer is named ("sign error", "forgot to square sigma", ...). It returns a ``Feedback``, which is
truthy when the answer is right and shows itself in green or red in a notebook. A checker never
raises: a function that raises, returns nothing or returns the wrong shape gets a one-line message.

Inputs are float32 ``jax.Array``s (uint8 NumPy pixels in chapter 2), so the function may use
``jnp`` or ``np``; the answer may be any array-like. Scalars (sigma, w) are Python floats.

Three modules: ``checking`` (the machinery every checker shares: ``Case``, ``check``,
``Feedback``), ``forward`` (chapters 0-5) and ``sampling`` (chapters 6-9). The image path's
checkers (``toydiff.images.exercises``) are built on the same machinery.
"""

from collections.abc import Callable

from toydiff.exercises.checking import (
    Feedback,
)
from toydiff.exercises.forward import (
    check_add_noise,
    check_eps_target,
    check_exact_denoiser,
    check_pixel_point,
    check_spiral,
)
from toydiff.exercises.sampling import (
    check_cfg,
    check_ddim_step,
    check_ddpm_step,
    check_negative,
)

CHECKERS: dict[str, Callable[[Callable], Feedback]] = {
    "spiral": check_spiral,
    "pixel_point": check_pixel_point,
    "add_noise": check_add_noise,
    "eps_target": check_eps_target,
    "exact_denoiser": check_exact_denoiser,
    "ddpm_step": check_ddpm_step,
    "ddim_step": check_ddim_step,
    "cfg": check_cfg,
    "negative": check_negative,
}
"""Every checker by exercise name."""

__all__ = [
    "CHECKERS",
    "Feedback",
    "check_spiral",
    "check_pixel_point",
    "check_add_noise",
    "check_eps_target",
    "check_exact_denoiser",
    "check_ddpm_step",
    "check_ddim_step",
    "check_cfg",
    "check_negative",
]
