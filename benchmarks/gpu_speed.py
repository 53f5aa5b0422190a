"""ERFNet vs LMA-ERFNet on a CUDA GPU (`lma-perception bench gpu` runs the same)."""

import argparse
import sys
from pathlib import Path

# Run from a checkout: prefer its package over an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lma_perception.benchmarks import gpu_speed

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=gpu_speed.__doc__.splitlines()[0])
    gpu_speed.add_arguments(parser)
    sys.exit(gpu_speed.main(parser.parse_args()))
