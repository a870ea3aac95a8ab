"""The browser helpers themselves: ``cell_errors`` tells a raised error from mere stderr output.

JupyterLab renders both as ``application/vnd.jupyter.stderr``, so this pins down that the chapter
tests would notice a failing cell, and would not fail on a warning.
"""

import pytest

pytestmark = pytest.mark.browser


def test_cell_errors_reports_a_raise_and_ignores_stderr(lab_page):
    tab = lab_page
    name = tab.server.write_notebook(
        "errors.ipynb",
        [
            "import sys\nprint('only a warning', file=sys.stderr)",
            "1 / 0",
            "print('never reached')",
        ],
    )
    tab.open_notebook(name)
    tab.run_all()
    problems = tab.cell_errors()
    assert len(problems) == 2, problems
    assert "cell 1" in problems[0] and "ZeroDivisionError: division by zero" in problems[0]
    assert "cell 2" in problems[1] and "was not run" in problems[1]
    assert not tab.offsite_requests(), tab.offsite_requests()
