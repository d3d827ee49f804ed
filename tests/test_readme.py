"""The README shows the numbers of the committed notebook run, not numbers typed by hand."""
from __future__ import annotations

from scripts import readme_results


def test_readme_results_table_is_the_notebooks():
    table = readme_results.notebook_results()
    assert table.startswith("| run |") and "as given" in table
    assert readme_results.readme_results() == table

