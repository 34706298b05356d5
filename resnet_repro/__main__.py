"""`python -m resnet_repro <overrides>`: run.py's command line from anywhere (see cli.py)."""

from resnet_repro.cli import main

if __name__ == "__main__":
    main()
