"""``python -m benchmarks.mmoe_synthetic``: see the package docstring."""

from benchmarks.mmoe_synthetic.run import main

if __name__ == "__main__":
  main()
