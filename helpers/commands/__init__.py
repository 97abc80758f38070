"""The commands that teachers and maintainers run: ``python -m helpers COMMAND``.

- ``run``, ``refresh``: execute the series with papermill; regenerate the stored outputs (runner.py, run.py, refresh.py)
- ``bench``: time the plain and the fast training recipes side by side (bench.py)
- ``student``, ``html``: the student edition and self-contained HTML handouts (classroom.py; the work in student.py,
  handouts.py, markdown_html.py, sanitize.py, html_allowlist.py)
- ``check``: run a class's submitted notebooks and mark every exercise (check.py; submissions.py, plan.py,
  execute.py, grade.py, report.py)

The lessons never import this subpackage; the code they use is at the top of ``helpers/``.
"""
