"""A reproduction of the CIFAR-10 degradation experiment of He et al. 2016 (see README.md).

Importing the package has no side effects: the entry points set the thread environment of a run
(threads.py), and `config.compose` / `config.resolve` describe a run before anything is done.
"""
