"""Draw your own data in a real browser: mouse strokes on the picture, train, samples land on it.

The scratch notebook holds the one cell a learner runs (the same call as the tour's last
section), so the test pays only for the widget and one short training run.
"""

import math
import re

import pytest

pytestmark = pytest.mark.browser

TRAINED_ON = re.compile(r"against your (\d+) points")
SCORES = re.compile(r"precision (\d+\.\d)% \(within [\d.]+\), coverage (\d+\.\d)%")


def test_a_drawn_ring_trains_into_samples_on_the_drawing(lab_page):
    """Press, drag a ring with the mouse, release, press train: the kernel scores its samples
    against the drawn points, and they must land on them (precision and coverage >= 80%)."""
    tab = lab_page
    name = tab.server.write_notebook(
        "draw.ipynb", ["import toydiff as td", "td.widgets.draw_your_data()"]
    )
    tab.open_notebook(name)
    tab.run_all()
    assert not tab.cell_errors()
    view = tab.widget("draw_your_data")
    img, readout = view.locator("img").first, view.locator(".widget-html").nth(1)
    box = img.bounding_box()
    cx, cy = box["x"] + 0.55 * box["width"], box["y"] + 0.5 * box["height"]
    radius = 0.25 * min(box["width"], box["height"])

    old = img.get_attribute("src")
    mouse = tab.page.mouse
    mouse.move(cx + radius, cy)
    mouse.down()
    for k in range(1, 73):  # once round, in 5-degree steps
        a = 2 * math.pi * k / 72
        mouse.move(cx + radius * math.cos(a), cy + radius * math.sin(a), steps=2)
    mouse.up()
    tab.wait_redrawn(img, old, readout, r"\d+ points drawn")  # the stroke's points arrive
    tab.screenshot(view, "drawn")

    old = img.get_attribute("src")
    view.get_by_role("button", name="train").click()
    tab.wait_redrawn(img, old, readout, r"coverage \d")
    text = readout.inner_text()
    precision, coverage = (float(v) / 100 for v in SCORES.search(text).groups())
    tab.screenshot(view, "trained")
    assert precision >= 0.8 and coverage >= 0.8, text
    drawn = int(TRAINED_ON.search(text).group(1))  # every point of the stroke, once it is over
    assert drawn >= 60, f"the stroke should leave a ring of points: {text}"
    field = tab.output("draw_your_data").locator(".widget-slider").first
    field.wait_for(state="visible")  # the new model's field explorer opened below
    assert not tab.offsite_requests(), tab.offsite_requests()
