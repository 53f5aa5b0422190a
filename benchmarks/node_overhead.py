"""Node overhead over rclpy transport (`lma-perception bench node_overhead` runs the same)."""

import argparse
import sys
from pathlib import Path

# Run from a checkout: prefer its package over an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lma_perception.benchmarks import node_overhead

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=node_overhead.__doc__.splitlines()[0])
    node_overhead.add_arguments(parser)
    sys.exit(node_overhead.main(parser.parse_args()))
