"""The measured checks of chapters 0 and 2, computed through the library as the notebooks do.

Chapter 3's check is ``test_processes.py::test_random_walk_matches_the_closed_form_marginal``;
chapters 4-9 are in ``test_phenomena.py``.
"""

import dataclasses

import jax
import numpy as np
import pytest

import toydiff as td

N = 2000  # random draws, as in 02_image_space.ipynb
TOL = 0.1  # a draw is inside a cluster when it lies within this distance of a good image


@pytest.fixture(scope="module")
def good_images():
    """The chapter-2 stand-in for the good images: 1,000 points in 8 Gaussian clusters."""
    return td.data.load("gaussians").x


def test_most_gaussian_noise_lands_outside_the_clusters(good_images):
    """Chapter 2: N(0, I) noise, where generation starts, mostly misses the clusters."""
    noise = jax.random.normal(jax.random.key(0), (N, 2))
    share = td.metrics.point_precision(noise, good_images, tol=TOL)
    assert 0 < share < 0.3  # measured: 0.2225 (445 of 2,000 draws)


def test_most_uniform_draws_over_the_square_land_outside_the_clusters(good_images):
    """Chapter 2: draws spread evenly over [-1.5, 1.5]^2 mostly miss the clusters too."""
    uniform = jax.random.uniform(jax.random.key(1), (N, 2), minval=-1.5, maxval=1.5)
    share = td.metrics.point_precision(uniform, good_images, tol=TOL)
    assert 0 < share < 0.3  # measured: 0.2525 (505 of 2,000 draws)


def test_tour_trains_and_samples_the_spiral():
    """Chapter 0 (untimed): the spiral, a small trained model, 256 points in 64 DDPM steps."""
    cloud = td.data.spiral()
    assert cloud.x.shape == (100, 2)
    model = td.train(dataclasses.replace(td.REFERENCE, steps=200, chunk=100), progress=False)
    traj = model.sample(jax.random.key(0), n=256, steps=64, sampler="ddpm")
    assert traj.shape == (65, 256, 2)
    assert np.isfinite(np.asarray(traj)).all()
