"""A reproduction of the CIFAR-10 degradation experiment of He et al. 2016 (see README.md).

Importing the package has no side effects: the entry points set the thread environment of a run
(threads.py), and `config.compose` / `config.resolve` describe a run before anything is done.
"""


def load_net(name: str, results=None):
    """A net with its final weights, by name, in one call: "paper/resnet-20" (a committed run of results/),
    "paper/plain-56/seed1", "akamaster/resnet-56" (a public pretrained net, imported); see pretrained.py."""
    from .pretrained import load_net as load

    return load(name, results)
