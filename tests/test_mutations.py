"""A change to what a lesson teaches must fail nbval (tests/mutate.py, tests/mutations/NN.json).

Slow (each mutation re-runs a notebook up to its first differing cell), so it runs only with
``pytest tests/test_mutations.py --mutations``; .ci/run does that.
"""

import mutate
import pytest

MUTATIONS = mutate.load_mutations()


def test_every_lesson_has_mutations():
    covered = {m.notebook.name for m in MUTATIONS}
    lessons = {p.name for p in (mutate.REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert covered == lessons, f"no tests/mutations/NN.json for {sorted(lessons - covered)}"


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[f"{m.notebook.name[:2]}-{m.why or m.new}" for m in MUTATIONS])
def test_nbval_catches_the_change(mutation, request):
    if not request.config.getoption("--mutations"):
        pytest.skip("slow: run with --mutations (as .ci/run does)")
    only = {n.strip().zfill(2) for n in request.config.getoption("--mutations-only").split(",") if n.strip()}
    if only and mutation.notebook.name[:2] not in only:
        pytest.skip(f"--mutations-only {','.join(sorted(only))}")
    outcome = mutate.run(mutation)
    assert outcome.caught, outcome.detail
