"""Colours of the lab: the two themes, the Okabe-Ito palette and a colour-blindness check.

The three class colours (people, dogs, cats) and the sample colour come from the Okabe-Ito
palette (Okabe and Ito, 2008), designed so that people with the common forms of colour
blindness can still tell its colours apart. ``separation`` checks that claim for each theme: it
simulates protanopia, deuteranopia and tritanopia with the matrices of Machado, Oliveira and
Fernandes (2009, severity 1) and measures the CIELAB distance (CIE76 Delta E) between every
pair of class colours and between each class colour and the background. A Delta E of about 2
is just noticeable; the tests ask for at least 20 between classes, and between samples (orange
in both themes) and training points (grey), under every simulation.

Measured (``separation``): dark theme, smallest class-to-class distance 33.6 (deuteranopia) and
smallest class-to-background 70.4; light theme 24.8 and 41.3; samples against training points
55.0 (dark) and 47.1 (light).
"""

from __future__ import annotations

import itertools

import numpy as np

OKABE_ITO = {
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish purple": "#CC79A7",
    "black": "#000000",
}

THEMES = {
    "dark": {
        "name": "dark",
        "background": "#101014",
        "text": "#ECECEC",
        "muted": "#9A9AA5",
        "grid": "#2A2A33",
        "data": "#8C96A8",
        "sample": OKABE_ITO["orange"],
        # people, dogs, cats
        "classes": (OKABE_ITO["sky blue"], OKABE_ITO["vermillion"], OKABE_ITO["yellow"]),
        "accent": "#F5F5F5",
        "cmap": "plasma",
        "font_size": 14,
        "title_size": 16,
    },
    "light": {
        "name": "light",
        "background": "#FFFFFF",
        "text": "#1A1A1A",
        "muted": "#5F6368",
        "grid": "#E0E0E0",
        "data": "#9E9E9E",
        "sample": OKABE_ITO["orange"],
        # people, dogs, cats
        "classes": (OKABE_ITO["blue"], OKABE_ITO["vermillion"], OKABE_ITO["sky blue"]),
        "accent": "#111111",
        "cmap": "viridis",
        "font_size": 14,
        "title_size": 16,
    },
}

# Machado, Oliveira and Fernandes (2009), severity 1.0, acting on linear RGB.
CVD = {
    "protanopia": np.array(
        [
            [0.152286, 1.052583, -0.204868],
            [0.114503, 0.786281, 0.099216],
            [-0.003882, -0.048116, 1.051998],
        ]
    ),
    "deuteranopia": np.array(
        [
            [0.367322, 0.860646, -0.227968],
            [0.280085, 0.672501, 0.047413],
            [-0.011820, 0.042940, 0.968881],
        ]
    ),
    "tritanopia": np.array(
        [
            [1.255528, -0.076749, -0.178779],
            [-0.078411, 0.930809, 0.147602],
            [0.004733, 0.691367, 0.303900],
        ]
    ),
}
VISIONS = ("normal", *CVD)

_RGB_TO_XYZ = np.array(
    [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
)  # linear sRGB -> CIE XYZ, D65 white
_WHITE = np.array([0.95047, 1.0, 1.08883])


def _linear(hex_color: str) -> np.ndarray:
    """'#RRGGBB' -> linear-light RGB in [0, 1], shape (3,)."""
    srgb = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)]) / 255.0
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def lab(hex_color: str, vision: str = "normal") -> np.ndarray:
    """CIELAB coordinates (L*, a*, b*) of a colour as seen with the given vision, shape (3,).

    Args:
        hex_color: ``"#RRGGBB"``.
        vision: ``"normal"`` or one of ``CVD`` (``"protanopia"``, ``"deuteranopia"``,
            ``"tritanopia"``).
    """
    if vision not in VISIONS:
        raise ValueError(f"unknown vision {vision!r}; choose one of {', '.join(VISIONS)}")
    rgb = _linear(hex_color)
    if vision != "normal":
        rgb = np.clip(CVD[vision] @ rgb, 0.0, 1.0)
    f = (_RGB_TO_XYZ @ rgb) / _WHITE
    f = np.where(f > 0.008856, np.cbrt(f), 7.787 * f + 16.0 / 116.0)
    return np.array([116.0 * f[1] - 16.0, 500.0 * (f[0] - f[1]), 200.0 * (f[1] - f[2])])


def separation(colors, background: str) -> dict:
    """The smallest Delta E between the colours, and to the background, under each vision.

    Args:
        colors: hex colours, e.g. a theme's ``classes``.
        background: the hex background they are drawn on.

    Returns:
        ``{vision: (min pairwise Delta E, min Delta E to the background)}`` for every vision in
        ``VISIONS``.
    """
    out = {}
    for vision in VISIONS:
        labs = [lab(c, vision) for c in colors]
        pair = min(np.linalg.norm(a - b) for a, b in itertools.combinations(labs, 2))
        back = min(np.linalg.norm(a - lab(background, vision)) for a in labs)
        out[vision] = (float(pair), float(back))
    return out
