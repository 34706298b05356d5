"""Entry point of a checkout: `python run.py arch=plain depth=20` is one run; add -m for a sweep.

    python run.py -m depth=20,56 arch=plain,resnet seed=0,1 steps=2000 data.root=...

The same command as `python -m resnet_repro` (resnet_repro/cli.py), with the configs of
resnet_repro/conf/ (also reachable as conf/).
"""

from resnet_repro.cli import main

if __name__ == "__main__":
    main()
