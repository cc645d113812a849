#!/bin/sh
# One command for every speed benchmark: see benchmarks/README.md.
#   benchmarks/run.sh [--quick] [--skip-install] [-- extra pytest args]
#   PYTHON=/path/to/venv/bin/python benchmarks/run.sh
exec "${PYTHON:-python3}" "$(dirname "$0")/run.py" "$@"
