"""Entry point: `python run.py arch=plain depth=20` is one run; add -m for a sweep.

    python run.py -m depth=20,56 arch=plain,resnet seed=0,1 steps=2000 data.root=...
"""

import hydra
from omegaconf import DictConfig

from resnet_repro.sweep import run_job


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> str:
    return run_job(cfg)


if __name__ == "__main__":
    main()
