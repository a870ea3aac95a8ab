"""Pictures of the lab: point clouds, vector fields, trajectories, curves and animations.

Three modules: ``style`` (themes and figure plumbing), ``plots`` (still pictures) and
``animation`` (moving pictures and their files). The drawing functions and themes are
importable from here; the figure plumbing the three share stays in ``viz.style``.

Every function here takes numpy (or JAX) arrays that the caller computed with the library, draws
them with matplotlib and returns the figure (or the animation). Nothing here calls a model, so a
picture can always be redrawn from saved arrays.

- Spatial plots (``points``, ``vector_field``, ``trajectories``, ``random_walk``) draw into a
  square axes over [-lim, lim]^2, the square of the 30 x 30 field grid in ``REFERENCE.md``.
- Every plot function takes an optional ``ax``: pass one to draw into your own figure, or leave
  it out for a fresh figure. ``compare`` lays several such drawings side by side.
- Every plot function takes ``theme``: ``"dark"`` for projectors, ``"light"`` for print, or
  ``None`` for the module default (``set_theme`` / ``theme``). Theme rcParams apply only while a
  function here draws; global rcParams stay as they were.
- Figures are plain ``matplotlib.figure.Figure`` objects, made without pyplot, so nothing pops up
  and nothing is shown twice in a notebook; ``plt.show()`` is never called.
- Animations are ``FuncAnimation`` objects: ``to_html`` embeds one in a notebook, ``save_gif``
  and ``save_mp4`` write files. Sizes and dpi are chosen so a 60-frame GIF stays well under 2 MB
  and video frames have even pixel sizes, as H.264 requires.
"""

from toydiff.viz.animation import (
    animate_field,
    animate_points,
    save_gif,
    save_mp4,
    to_html,
)
from toydiff.viz.plots import (
    cfg_sweep,
    compare,
    loss_curve,
    phase_curves,
    points,
    random_walk,
    savefig,
    tail_segments,
    trajectories,
    update_vector_field,
    vector_field,
)
from toydiff.viz.style import (
    ANIM_SIZE,
    CLASS_NAMES,
    DPI,
    LIM,
    new_axes,
    palette,
    set_theme,
    theme,
)

__all__ = [
    "CLASS_NAMES",
    "DPI",
    "ANIM_SIZE",
    "LIM",
    "palette",
    "set_theme",
    "theme",
    "new_axes",
    "points",
    "vector_field",
    "update_vector_field",
    "tail_segments",
    "trajectories",
    "random_walk",
    "loss_curve",
    "phase_curves",
    "cfg_sweep",
    "compare",
    "savefig",
    "animate_points",
    "animate_field",
    "to_html",
    "save_gif",
    "save_mp4",
]
