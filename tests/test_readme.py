"""The README's commands and code examples stay true."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()


def test_first_lines_are_the_two_commands_and_ci_runs_the_test_command():
  block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).splitlines()
  main_job, tests = (line.split("  #")[0].strip() for line in block[:2])
  assert main_job.startswith("pip install -e . && mtl-jax compare")
  install, pytest_cmd = tests.split(" && ")
  assert install in CI and pytest_cmd.replace("tests", "").strip() in CI


def test_readme_python_example_runs(capsys):
  code = re.search(r"```python\n(# README example.*?)```", README, re.S).group(1)
  scope = {}
  exec(compile(code, "README.md", "exec"), scope)
  losses = scope["losses"]
  assert losses.shape == (2,) and float(losses.max()) < 0.5
