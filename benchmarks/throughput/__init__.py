"""Training throughput, three ways, in one run on one machine:

  (a) project    the real training path: TrainBatches + Classifier + the pl.Trainer a run builds
                 (train.build_module / train.build_trainer, so every speed switch in conf/config.yaml applies)
  (b) bare loop  the same module, optimizer, schedule and TrainBatches, stepped in a plain PyTorch loop
  (c) reference  the way public CIFAR reproductions train (akamaster/pytorch_resnet_cifar10 style):
                 torchvision's CIFAR10 dataset object with PIL transforms (RandomHorizontalFlip,
                 RandomCrop(32, 4), ToTensor, Normalize) in a DataLoader, the same network in eager
                 NCHW fp32, a plain loop with a per-step loss.item() and accuracy

Images per second are timed after warm-up, between the end of step `warmup` and the end of
step `warmup + steps`, data loading included. The paths are measured in turn, `repeats`
times in a rotating order (so a change in machine load hits all of them alike), and the
median is reported. Each median is also stated as training GFLOP/s (times the net's counted
FLOPs per image) and as a fraction of the CPU's nominal peak and of a measured matrix multiply,
for the arithmetic the path computes in; and a few steps of (b) are profiled, after the
timings, to say where a step's time goes.

    python -m benchmarks.throughput --data-root /tmp/cifar10            # real data (any layout data.py reads)
    python -m benchmarks.throughput                                      # generated images
    python -m benchmarks.throughput --set trainer.compile=true --depths 20
    python -m benchmarks.throughput --profile 0                          # no profile of (b)

    paths.py      what is timed: each path as data (kind, workers, thread env, overrides) and its names
    harness.py    (a) and (b), the generated images, the rotation
    reference.py  (c)
    process.py    a path timed in a process of its own: (c), and a variant of (a) that changes a
                  process-wide setting (trainer.keep_freed_memory)
    flops.py      FLOPs per image of a net's forward pass and training step, counted
    ceiling.py    the machine's ceilings: nominal peak (resnet_repro/machine.py), a measured matmul and convolution
    profile.py    where a step of (b) spends its time, by part
    render.py     the Markdown and CSV result, and its file name
    cli.py        the command line
    sweeps.py     a whole sweep one run at a time against side by side (python -m benchmarks.throughput.sweeps)
    resnet_repro/machine.py  the machine the result names

Importing this package imports nothing else: `python -m benchmarks.throughput` sets the thread
environment (resnet_repro/threads.py) before torch is imported.
"""
