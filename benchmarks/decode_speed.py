"""Input decoding speed (`lma-perception bench decode` runs the same)."""

import argparse
import sys
from pathlib import Path

# Run from a checkout: prefer its package over an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lma_perception.benchmarks import decode_speed

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=decode_speed.__doc__.splitlines()[0])
    decode_speed.add_arguments(parser)
    sys.exit(decode_speed.main(parser.parse_args()))
