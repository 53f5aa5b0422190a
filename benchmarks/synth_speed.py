"""Synthetic video generator speed (`lma-perception bench synth` runs the same)."""

import argparse
import sys
from pathlib import Path

# Run from a checkout: prefer its package over an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lma_perception.benchmarks import synth_speed

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=synth_speed.__doc__.splitlines()[0])
    synth_speed.add_arguments(parser)
    sys.exit(synth_speed.main(parser.parse_args()))
