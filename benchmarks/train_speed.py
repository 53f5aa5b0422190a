"""Training steps per second, eager and compiled (`lma-perception bench train` runs the same)."""

import argparse
import sys
from pathlib import Path

# Run from a checkout: prefer its package over an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lma_perception.benchmarks import train_speed

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=train_speed.__doc__.splitlines()[0])
    train_speed.add_arguments(parser)
    sys.exit(train_speed.main(parser.parse_args()))
