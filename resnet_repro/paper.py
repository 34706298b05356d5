"""What the paper reports for CIFAR-10 (He et al. 2016, section 4.2), stated once.

The protocol itself (schedule, optimiser, data split) is the default config, conf/config.yaml;
this module holds the paper's facts that code compares with or draws: its depths, its schedule
length, its Table 6 and its Figure 6 panels.
"""

# The depths 6n+2 the paper trains (n = 3, 5, 7, 9, 18, 200).
DEPTHS = (20, 32, 44, 56, 110, 1202)

# Iterations: lr 0.1, divided by 10 at 32k and 48k, training stops at 64k.
STEPS = 64000
LR_DROPS = (32000, 48000)

# The top of the error axis (%) in Figures 1 and 6.
ERROR_AXIS = 20.0

# Table 6, test error % (option A shortcuts). ResNet-110 is "best (mean ± std)" of 5 runs;
# TEST_ERROR[110] is the mean.
TEST_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.61, 1202: 7.93}
RESNET110_BEST, RESNET110_STD = 6.43, 0.16
# The paper gives plain nets no Table 6 row; of plain-110 it says only that its error is above 60%.
PLAIN_110 = "> 60"

# Not the paper's: the closest public re-run of its exact protocol (nabla0001/resnet: 45k/5k split,
# 64k iterations, lr drops at 32k and 48k, option A), final test error % over 5 seeds, (mean, std).
# The only published numbers for plain nets trained this way.
PUBLIC_RERUN = {
    ("plain", 20): (9.78, 0.13),
    ("plain", 56): (12.95, 0.22),
    ("resnet", 20): (8.51, 0.22),
    ("resnet", 56): (7.40, 0.27),
    ("resnet", 110): (7.14, 0.20),
}

# Figure 6's panels as the paper draws them: (title, arch, depths).
FIGURE6_PANELS = (
    ("plain networks", "plain", (20, 32, 44, 56)),
    ("ResNets", "resnet", (20, 32, 44, 56, 110)),
    ("ResNet-110 vs ResNet-1202", "resnet", (110, 1202)),
)
