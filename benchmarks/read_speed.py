"""The exported memory read per tile shape (`lma-perception bench read` runs the same)."""

import argparse
import sys
from pathlib import Path

# Run from a checkout: prefer its package over an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lma_perception.benchmarks import read_speed

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=read_speed.__doc__.splitlines()[0])
    read_speed.add_arguments(parser)
    sys.exit(read_speed.main(parser.parse_args()))
