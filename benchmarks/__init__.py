"""The project's own measurements, run from a checkout (not part of the installed package):

python -m benchmarks.throughput          training images per second: the project, a bare loop, a public loop
python -m benchmarks.throughput.sweeps   a 4-run sweep one run at a time against two side by side
python benchmarks/crosscheck.py          a ResNet-20 trained by an independent public-style loop
"""
