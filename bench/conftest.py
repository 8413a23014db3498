import sys
from pathlib import Path

# The benches reuse the tests' random-checkpoint builders.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
