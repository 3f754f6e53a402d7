"""A catalog config without its data: one clear message before compiling."""

import pathlib

import pytest

from mtl_jax import cli, config_files
from mtl_jax.data import base, catalog
from mtl_jax.train import loop, validate

CONFIG = (pathlib.Path(__file__).resolve().parents[2] / "configs" / "catalog"
          / "multi_mnist.py")


def _never_compile(*args, **kwargs):
  raise AssertionError("compiled before the missing data was reported")


def _assert_explains(message: str, root) -> None:
  assert "Dataset 'multi_mnist' reads the TFDS dataset 'mnist'" in message  # what
  assert f"not prepared under {root}" in message                           # where
  assert f"tfds build mnist --data_dir={root}" in message                  # how
  assert catalog.README_SECTION in message
  assert 'README.md, section "Catalog datasets"' in catalog.README_SECTION


def test_check_config_reports_missing_catalog_data(tmp_path):
  c = config_files.load(CONFIG)
  c.data.data_dir = str(tmp_path)
  with pytest.raises(catalog.MissingDataError) as error:
    validate.check_config(c)
  _assert_explains(str(error.value), tmp_path)


def test_check_config_passes_embedded_data_without_generating_it(tmp_path):
  c = config_files.load(CONFIG.parents[1] / "toy.py")
  c.data.data_dir = str(tmp_path)
  validate.check_config(c)
  assert not any(tmp_path.iterdir())  # generated on first read, not here


@pytest.mark.parametrize("command", ["train", "compare", "eval"])
def test_cli_prints_one_message_and_exits_2(command, tmp_path, capsys, monkeypatch):
  monkeypatch.setattr(loop, "compile_run", _never_compile)
  monkeypatch.setenv(base.DATA_DIR_ENV, str(tmp_path))
  progress = [] if command == "eval" else ["--noprogress"]  # eval has no bar
  code = cli.main(["mtl-jax", command, f"--config={CONFIG}",
                   f"--workdir={tmp_path / 'run'}", *progress])
  out, err = capsys.readouterr()
  assert code == 2
  assert err.startswith(f"mtl-jax {command}: Dataset 'multi_mnist'")
  assert "Traceback" not in err and not out
  assert len(err.strip().splitlines()) == 1
  _assert_explains(err, tmp_path)
